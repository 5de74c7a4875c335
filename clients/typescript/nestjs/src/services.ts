import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnApplicationBootstrap } from "@nestjs/common";
import { Job, JobData, QueueClient, Worker, api } from "@queueapp/client";
import { QUEUEAPP_OPTIONS } from "./constants";
import type { JobOptions, PriorityFactors, QueueappModuleOptions, QueueHealthStatus, QueueMetrics } from "./interfaces";

function factorsOf(factors: PriorityFactors): api.PriorityFactors {
  const { deadline, ...rest } = factors;
  return { ...rest, ...(deadline === undefined ? {} : { deadline: deadline instanceof Date ? deadline.toISOString() : deadline }) };
}

/** The seed's QueueService: adding jobs and what its controller does with the queue. */
@Injectable()
export class QueueService {
  constructor(private readonly client: QueueClient) {}

  /** Adds a job; with `priorityFactors` and no options.priority, the appliance computes its priority. */
  addJob<D extends JobData>(name: string, data: D = {} as D, options: JobOptions = {}, priorityFactors?: PriorityFactors): Promise<Job<D>> {
    return this.client.add(name, data, options, priorityFactors ? factorsOf(priorityFactors) : undefined);
  }

  /** Adds jobs all or none, in one transaction. */
  addBulkJobs(jobs: Array<{ name: string; data?: JobData; options?: JobOptions; priorityFactors?: PriorityFactors }>): Promise<Job[]> {
    return this.client.addBulk(jobs.map((job) => ({
      name: job.name, data: job.data ?? {}, options: job.options ?? {},
      ...(job.priorityFactors ? { priorityFactors: factorsOf(job.priorityFactors) } : {}),
    })));
  }

  /** The job, or null. */
  getJob(id: string): Promise<Job | null> {
    return this.client.findJob(String(id));
  }

  getQueueMetrics(): Promise<QueueMetrics> {
    return this.client.metrics();
  }

  getFailedJobs(limit = 10): Promise<Job[]> {
    return this.client.failedJobs(limit);
  }

  /** A failed or cancelled job back in waiting, with a fresh set of attempts. */
  retryJob(id: string): Promise<Job> {
    return this.client.retryJob(String(id));
  }

  /** Cancels a waiting or delayed job; asks an active one to stop. */
  removeJob(id: string): Promise<Job> {
    return this.client.cancelJob(String(id));
  }

  pauseQueue(): Promise<api.PausedOut> {
    return this.client.pause();
  }

  resumeQueue(): Promise<api.PausedOut> {
    return this.client.resume();
  }

  /** Removes jobs finished more than `grace` ms ago in `status`; answers how many. */
  async cleanQueue(grace = 0, status: "completed" | "failed" | "cancelled" = "completed", limit?: number): Promise<number> {
    return (await this.client.clean({ grace, status, ...(limit ? { limit } : {}) })).removed;
  }
}

/** The seed's QueueMonitoringService: the appliance's metrics, health and failures.
 * The appliance itself checks health every minute and sends the alerts. */
@Injectable()
export class QueueMonitoringService {
  constructor(private readonly client: QueueClient) {}

  getQueueMetrics(): Promise<QueueMetrics> {
    return this.client.metrics();
  }

  /** `status` healthy, warning or critical, with its `issues` (answered alike when critical). */
  checkQueueHealth(): Promise<QueueHealthStatus> {
    return this.client.health();
  }

  getFailedJobs(limit = 10): Promise<Job[]> {
    return this.client.failedJobs(limit);
  }

  getStuckJobs(): Promise<Job[]> {
    return this.client.stuckJobs();
  }
}

type Callback = () => unknown | Promise<unknown>;

/**
 * The seed's JobSchedulerService. scheduleJob and scheduleDelayedJob add delayed
 * jobs; scheduleRecurringJob makes a schedule on the appliance whose every run is a
 * job on the recurring queue, leased by one app instance, which runs the callback:
 * once per run however many instances are up.
 */
@Injectable()
export class JobSchedulerService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger("JobSchedulerService");
  private readonly callbacks = new Map<string, Callback>();
  private readonly names: string[] = [];
  private readonly recurring: QueueClient;
  private worker?: Worker;
  private started = false;

  constructor(private readonly client: QueueClient, @Inject(QUEUEAPP_OPTIONS) private readonly options: QueueappModuleOptions) {
    this.recurring = client.forQueue(options.recurringQueue ?? `${client.queue}.recurring`, { coalesce: false });
  }

  /** Adds a job that runs at `when` (in the past: at once). */
  scheduleJob<D extends JobData>(name: string, data: D, when: Date | string, options: JobOptions = {}): Promise<Job<D>> {
    return this.client.schedule(name, data, when, options);
  }

  /** Adds a job that runs `delayMs` from now. */
  scheduleDelayedJob<D extends JobData>(name: string, data: D, delayMs: number, options: JobOptions = {}): Promise<Job<D>> {
    return this.client.add(name, data, { ...options, delay: delayMs });
  }

  /** Runs `callback` on `cron` (five fields, UTC unless `timezone`), in one app instance per run.
   * The schedule is kept on the appliance under `name` (saving it again replaces it). */
  scheduleRecurringJob(name: string, cron: string, callback: Callback,
    options: { timezone?: string; data?: JobData; attempts?: number } = {}): Promise<api.ScheduleOut> {
    this.callbacks.set(name, callback);
    if (!this.names.includes(name)) this.names.push(name);
    const saving = this.recurring.saveSchedule({
      name, cron, timezone: options.timezone ?? "UTC", jobName: name, data: options.data ?? {},
      // one run, one call: a callback that fails is not run again for that run
      options: { attempts: options.attempts ?? 1 },
    });
    if (this.started) this.startWorker();
    // the seed calls this without awaiting: a failure is logged, not left unhandled
    saving.catch((error) => this.logger.error(`schedule ${name} not saved: ${error.message}`));
    return saving;
  }

  /** Stops running the callback of `name` and removes its schedule. */
  async removeRecurringJob(name: string): Promise<void> {
    this.callbacks.delete(name);
    await this.recurring.deleteSchedule(name);
  }

  onApplicationBootstrap(): void {
    this.started = true;
    if (this.names.length) this.startWorker();
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.started = false;
    await this.worker?.close(this.options.closeTimeoutMs);
  }

  private startWorker(): void {
    if (this.worker || this.options.workers === false) return;
    // `names` is read at each lease: callbacks registered later join it
    this.worker = new Worker(this.recurring, {
      names: this.names, concurrency: 4, leaseMs: this.options.leaseMs, closeTimeoutMs: this.options.closeTimeoutMs,
    }, async (job) => {
      const callback = this.callbacks.get(job.name);
      if (!callback) throw new Error(`no callback for ${job.name} in this app`);
      return (await callback()) ?? null;
    });
    this.worker.on("error", (error) => this.logger.error(error.message));
  }
}
