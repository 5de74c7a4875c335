import type { api, Job, JobData, QueueClient } from "@queueapp/client";
import type { JobOptions } from "./interfaces";

/** Bull's job options, as `queue.add` takes them; the appliance's own are accepted too. */
export interface BullJobOptions extends Omit<JobOptions, "backoff"> {
  /** Bull: a number (fixed delay in ms) or {type, delay}. */
  backoff?: number | api.BackoffOptions;
  /** Bull's repeatable jobs: a schedule on the appliance instead of a job. */
  repeat?: { cron?: string; every?: number; tz?: string; key?: string };
  /** Not supported: the appliance starts jobs first in, first out within a priority. */
  lifo?: boolean;
}

/** Converts Bull's options to the appliance's; refuses what the appliance does not do. */
export function toOptions(options: BullJobOptions = {}): JobOptions {
  const { backoff, repeat, lifo, ...rest } = options;
  if (lifo) throw new TypeError("lifo is not supported: jobs of one priority start first in, first out");
  if (repeat) throw new TypeError("repeat makes a schedule on the appliance: use queue.addRepeatable(name, data, repeat)");
  const converted: JobOptions = { ...rest };
  if (typeof backoff === "number") converted.backoff = { type: "fixed", delay: backoff };
  else if (backoff) converted.backoff = backoff;
  return converted;
}

/**
 * One queue of the appliance with Bull's everyday methods, as @InjectQueue(name)
 * gives it. Jobs are the appliance's (`id`, `name`, `data`, `state`, `progress`,
 * `result`, `attemptsMade`, ...).
 */
export class Queue {
  constructor(readonly name: string, readonly client: QueueClient) {}

  /** Adds a job, or `repeat` ({cron} or {every}) a schedule (see addRepeatable). */
  async add<D extends JobData>(name: string, data: D = {} as D, options: BullJobOptions = {}): Promise<Job<D>> {
    if (options.repeat) throw new TypeError("repeat makes a schedule on the appliance: use queue.addRepeatable(name, data, repeat)");
    return this.client.add(name, data, toOptions(options));
  }

  /** Bull's repeatable job as the appliance's schedule (named `repeat.key ?? name`): each run adds a job named `name`. */
  addRepeatable(name: string, data: JobData, repeat: NonNullable<BullJobOptions["repeat"]>, options: BullJobOptions = {}): Promise<api.ScheduleOut> {
    const spec = repeat.cron ? { cron: repeat.cron, timezone: repeat.tz ?? "UTC" } : { everyMs: Number(repeat.every) };
    return this.client.saveSchedule({ name: repeat.key ?? name, jobName: name, data, options: toOptions(options), ...spec });
  }

  addBulk(jobs: Array<{ name: string; data?: JobData; opts?: BullJobOptions }>): Promise<Job[]> {
    return this.client.addBulk(jobs.map((job) => ({ name: job.name, data: job.data ?? {}, options: toOptions(job.opts) })));
  }

  /** The job, or null. */
  getJob(id: string): Promise<Job | null> {
    return this.client.findJob(String(id));
  }

  async getJobCounts(): Promise<{ waiting: number; active: number; completed: number; failed: number; delayed: number; paused: number }> {
    const { waiting, active, completed, failed, delayed, paused } = await this.client.metrics();
    return { waiting, active, completed, failed, delayed, paused };
  }

  async pause(): Promise<void> {
    await this.client.pause();
  }

  async resume(): Promise<void> {
    await this.client.resume();
  }

  async isPaused(): Promise<boolean> {
    const queues = (await this.client.listQueues()).queues;
    return Boolean(queues.find((q) => q.name === this.name)?.paused);
  }

  /** Removes finished jobs older than `grace` ms; answers how many (Bull answers the jobs). */
  async clean(grace: number, status: "completed" | "failed" = "completed", limit?: number): Promise<number> {
    return (await this.client.clean({ grace, status, ...(limit ? { limit } : {}) })).removed;
  }

  /** Failed jobs, newest failure first, from `start` to `end` inclusive (Bull's range). */
  async getFailed(start = 0, end = -1): Promise<Job[]> {
    const limit = end < 0 ? 1000 : Math.min(end + 1, 1000);
    return (await this.client.failedJobs(limit)).slice(start);
  }

  async getJobs(states: Array<api.JobOut["state"]>, limit = 100): Promise<Job[]> {
    const found: Job[] = [];
    for (const state of states) found.push(...((await this.client.listJobs({ state, limit })).jobs as Job[]));
    return found;
  }

  async retryJob(id: string): Promise<Job> {
    return this.client.retryJob(String(id));
  }

  async removeJob(id: string): Promise<Job> {
    return this.client.cancelJob(String(id));
  }
}
