import type * as api from "./api";
import { OperationId } from "./api";
import { Coalescer } from "./coalesce";
import { QueueApiError } from "./errors";
import { Answer, CallParams, Connection, ConnectionOptions } from "./http";

export type JobOptions = api.JobOptions;
export type JobData = Record<string, any>;

/** A job to add: its name, its data, its options (and business factors that decide
 * its priority when the options give none). */
export interface NewJob<D extends JobData = JobData> {
  name: string;
  data?: D;
  options?: JobOptions;
  priorityFactors?: api.PriorityFactors;
}

/** A job as the appliance answers it, its data typed by the caller. */
export type Job<D extends JobData = JobData, R = any> = Omit<api.JobOut, "data" | "result"> & { data: D; result: R | null };

export interface ClientOptions extends ConnectionOptions {
  /** Concurrent `add` calls go as bulk requests, each caller still answered with its
   * own job or error (default true). */
  coalesce?: boolean;
}

/** One committed transition of a job, from the live events stream. */
export interface JobEvent {
  /** The event's id, for lastEventId (a gap has none). */
  id?: string;
  type: string;
  jobId: string;
  queue: string;
  name: string;
  at: string;
  [key: string]: unknown;
}

/**
 * Every operation of the appliance's API. Typed by the appliance's own OpenAPI
 * description (src/api.ts is generated from it), so a client that has not followed
 * a change of the API does not build.
 *
 *     const client = new QueueClient("http://127.0.0.1:3000", { token });
 *     const job = await client.add("send-email", { to: "user@example.com" }, { priority: 2 });
 */
export class QueueClient {
  readonly connection: Connection;
  private readonly adds?: Coalescer<NewJob, Job>;

  constructor(baseUrl: string | Connection, options: ClientOptions = {}) {
    this.connection = typeof baseUrl === "string" ? new Connection(baseUrl, options) : baseUrl;
    if (options.coalesce ?? true) this.adds = new Coalescer((jobs) => this.addBulk(jobs));
  }

  get queue(): string {
    return this.connection.queue;
  }

  /** The same appliance and token, calls going to `queue`. */
  forQueue(queue: string, options: ClientOptions = {}): QueueClient {
    return new QueueClient(this.connection.withQueue(queue), options);
  }

  /** Any operation by its OpenAPI operationId. */
  call<K extends OperationId>(op: K, params: CallParams<K>): Promise<Answer<K>> {
    return this.connection.call(op, params);
  }

  /** Sends the adds still waiting to go in a bulk. */
  async close(): Promise<void> {
    await this.adds?.drain();
  }

  // -- producers ------------------------------------------------------------------

  /** Adds one job; 201 with the new job, or the existing one for a used `jobId`. */
  add<D extends JobData>(name: string, data: D = {} as D, options: JobOptions = {},
    priorityFactors?: api.PriorityFactors): Promise<Job<D>> {
    const job: NewJob = { name, data, options, ...(priorityFactors ? { priorityFactors } : {}) };
    if (!this.adds) return this.call("add_job", { body: job }) as Promise<Job<D>>;
    if ((options.dependsOn ?? []).some((ref) => ref.startsWith("#"))) {
      throw new TypeError('dependsOn "#n" names a job of the same request: use addBulk, or job ids');
    }
    return this.adds.add(job) as Promise<Job<D>>;
  }

  /** Adds jobs in one transaction, all or none (up to 10,000). */
  async addBulk(jobs: NewJob[]): Promise<Job[]> {
    const answer = await this.call("add_bulk", { body: { jobs } });
    return answer.jobs as Job[];
  }

  /** Adds jobs over one streamed request, one line each; each line is answered on
   * its own: the job's id, or its error. */
  async addStream(jobs: NewJob[]): Promise<Array<{ id: string } | { error: api.ErrorBody }>> {
    const body = jobs.map((job) => JSON.stringify(job)).join("\n") + "\n";
    const text = await this.call("stream_jobs", { body });
    return text.split("\n").filter(Boolean).map((line) => JSON.parse(line));
  }

  /** Adds a job that runs at `when` (in the past: at once). */
  schedule<D extends JobData>(name: string, data: D, when: Date | string, options: JobOptions = {}): Promise<Job<D>> {
    const scheduledTime = when instanceof Date ? when.toISOString() : when;
    return this.call("schedule_job", { body: { name, data, scheduledTime, options } }) as Promise<Job<D>>;
  }

  // -- jobs -----------------------------------------------------------------------

  getJob<D extends JobData = JobData>(id: string): Promise<Job<D>> {
    return this.call("get_job", { path: { id } }) as Promise<Job<D>>;
  }

  /** The job, or null when the appliance knows none by that id. */
  async findJob<D extends JobData = JobData>(id: string): Promise<Job<D> | null> {
    try {
      return await this.getJob<D>(id);
    } catch (error) {
      if (error instanceof QueueApiError && error.status === 404) return null;
      throw error;
    }
  }

  listJobs(query: api.Operations["list_jobs"]["query"] = {}): Promise<api.JobPageOut> {
    return this.call("list_jobs", { query });
  }

  /** A waiting or delayed job becomes cancelled; an active one is asked to stop. */
  cancelJob(id: string): Promise<Job> {
    return this.call("cancel_job", { path: { id } }) as Promise<Job>;
  }

  retryJob(id: string): Promise<Job> {
    return this.call("retry_job", { path: { id } }) as Promise<Job>;
  }

  promoteJob(id: string): Promise<Job> {
    return this.call("promote_job", { path: { id } }) as Promise<Job>;
  }

  /** Retry, cancel, promote or delete jobs by ids or by the filters of `query`. */
  act(body: api.ActionBody, query: api.Operations["act"]["query"] = {}): Promise<api.ActionOut> {
    return this.call("act", { body, query });
  }

  async failedJobs(limit = 10): Promise<Job[]> {
    return (await this.call("failed_jobs", { query: { limit } })).jobs as Job[];
  }

  async stuckJobs(): Promise<Job[]> {
    return (await this.call("stuck_jobs", {})).jobs as Job[];
  }

  failureGroups(limit = 50): Promise<api.FailureGroupsOut> {
    return this.call("failure_groups", { query: { limit } });
  }

  runningJobs(): Promise<api.RunningOut> {
    return this.call("running", {});
  }

  // -- queues -----------------------------------------------------------------------

  metrics(): Promise<api.MetricsOut> {
    return this.call("metrics", {});
  }

  /** The queue's health; answered alike when it is critical (HTTP 503). */
  async health(): Promise<api.HealthOut> {
    try {
      return await this.call("health", {});
    } catch (error) {
      if (error instanceof QueueApiError && error.status === 503 && error.body) return error.body as api.HealthOut;
      throw error;
    }
  }

  history(window?: "1h" | "24h" | "7d"): Promise<api.HistoryOut> {
    return this.call("history", { query: { window } });
  }

  listQueues(): Promise<api.QueuesOut> {
    return this.call("list_queues", {});
  }

  pause(): Promise<api.PausedOut> {
    return this.call("pause", {});
  }

  resume(): Promise<api.PausedOut> {
    return this.call("resume", {});
  }

  /** Removes finished jobs older than `grace` ms; answers how many. */
  clean(body: api.CleanBody = {}): Promise<api.RemovedOut> {
    return this.call("clean", { body });
  }

  nodes(): Promise<api.NodesOut> {
    return this.call("nodes", {});
  }

  audit(): Promise<api.AuditOut> {
    return this.call("audit", {});
  }

  livez(): Promise<api.LivezOut> {
    return this.call("livez", {});
  }

  openapi(): Promise<api.DocumentOut> {
    return this.call("openapi", {});
  }

  /** The Prometheus text exposition. */
  prometheusMetrics(): Promise<string> {
    return this.call("prometheus_metrics", {});
  }

  /** Committed transitions of the queue's jobs as they happen (of `names` only, when
   * given), until `signal` aborts (then the iteration ends). Each event has its `id`;
   * `lastEventId` resumes after one (a `gap` event first says when some of what came
   * after it is no longer kept). */
  async *events(options: { names?: string[]; signal?: AbortSignal; lastEventId?: string } = {}): AsyncGenerator<JobEvent> {
    const query: Record<string, unknown> = { queue: this.queue };
    if (options.names?.length) query.name = options.names.join(",");
    if (options.lastEventId) query.lastEventId = options.lastEventId;
    const response = await this.connection.open("job_events", query, options.signal);
    const decoder = new TextDecoder();
    let buffered = "";
    try {
      for await (const chunk of response as AsyncIterable<Uint8Array>) {
        buffered += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffered.indexOf("\n\n")) >= 0) {
          const message = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          const lines = message.split("\n");
          const data = lines.filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
          const id = lines.find((l) => l.startsWith("id:"))?.slice(3).trim();
          const kind = lines.find((l) => l.startsWith("event:"))?.slice(6).trim();
          if (data) yield { ...(kind === "gap" ? { type: "gap" } : {}), ...JSON.parse(data), ...(id ? { id } : {}) } as JobEvent;
        }
      }
    } catch (error) {
      if (options.signal?.aborted) return;  // the caller stopped reading: the stream just ends
      throw error;
    } finally {
      response.destroy();
    }
  }

  // -- workers (the Worker class does all of this for a handler) --------------------

  async lease(body: api.LeaseBody = {}, signal?: AbortSignal): Promise<Array<Job & { leaseToken: string; leaseExpiresAt: string | null }>> {
    const timeoutMs = 60_000 + (body.waitMs ?? 0);
    return (await this.call("lease", { body, signal, timeoutMs })).jobs as Array<Job & { leaseToken: string; leaseExpiresAt: string | null }>;
  }

  heartbeat(id: string, body: api.HeartbeatBody): Promise<api.HeartbeatOut> {
    return this.call("heartbeat", { path: { id }, body });
  }

  complete(id: string, leaseToken: string, result: unknown = null): Promise<Job> {
    return this.call("complete", { path: { id }, body: { leaseToken, result } }) as Promise<Job>;
  }

  async completeMany(jobs: api.CompleteItem[]): Promise<api.CompleteResult[]> {
    return (await this.call("complete_many", { body: { jobs } })).results;
  }

  fail(id: string, body: api.FailBody): Promise<Job> {
    return this.call("fail", { path: { id }, body }) as Promise<Job>;
  }

  /** Appends lines to a leased job's log (at most 100, each at most 2,000 characters);
   * the number of its last line. */
  async appendLog(id: string, leaseToken: string, lines: string[]): Promise<number> {
    return (await this.call("append_log", { path: { id }, body: { leaseToken, lines } })).lastSeq;
  }

  /** The audit trail: operator changes, newest first; every queue's unless `queue` names one. */
  auditTrail(query: api.Operations["audit_trail"]["query"] = {}): Promise<api.AuditTrailOut> {
    const every = { queue: null } as unknown as api.Operations["audit_trail"]["query"];
    return this.call("audit_trail", { query: { ...every, ...query } });
  }

  /** The jobs waiting on this one (their options.dependsOn names it). */
  async jobDependents(id: string): Promise<api.DependentOut[]> {
    return (await this.call("job_dependents", { path: { id } })).jobs;
  }

  /** The job's log lines numbered after `after`, and the last one's number. */
  jobLog(id: string, after = 0, limit = 1000): Promise<api.JobLogOut> {
    return this.call("job_log", { path: { id }, query: { after, limit } });
  }

  release(id: string, leaseToken: string): Promise<Job> {
    return this.call("release", { path: { id }, body: { leaseToken } }) as Promise<Job>;
  }

  // -- schedules ----------------------------------------------------------------------

  /** Creates or replaces the schedule of this name (cron with a timezone, or everyMs). */
  saveSchedule(body: api.ScheduleSpec): Promise<api.ScheduleOut> {
    return this.call("save_schedule", { body });
  }

  async listSchedules(): Promise<api.ScheduleOut[]> {
    return (await this.call("list_schedules", {})).schedules;
  }

  getSchedule(name: string): Promise<api.ScheduleOut> {
    return this.call("get_schedule", { path: { name } });
  }

  deleteSchedule(name: string): Promise<api.RemovedOut> {
    return this.call("delete_schedule", { path: { name } });
  }

  pauseSchedule(name: string): Promise<api.ScheduleOut> {
    return this.call("pause_schedule", { path: { name } });
  }

  resumeSchedule(name: string): Promise<api.ScheduleOut> {
    return this.call("resume_schedule", { path: { name } });
  }

  /** Fires the schedule now, as if its time had come. */
  runSchedule(name: string): Promise<Job> {
    return this.call("run_schedule", { path: { name } }) as Promise<Job>;
  }

  // -- group flow control -------------------------------------------------------------

  groups(limit = 100): Promise<api.GroupsOut> {
    return this.call("list_groups", { query: { limit } });
  }

  groupPolicy(): Promise<api.Operations["get_policy"]["answer"]> {
    return this.call("get_policy", {});
  }

  setGroupPolicy(body: api.LimitsBody): Promise<api.Operations["set_policy"]["answer"]> {
    return this.call("set_policy", { body });
  }

  dropGroupPolicy(): Promise<api.Operations["drop_policy"]["answer"]> {
    return this.call("drop_policy", {});
  }

  groupKey(key: string): Promise<api.GroupKeyOut> {
    return this.call("get_key", { path: { key } });
  }

  setGroupKey(key: string, body: api.LimitsBody): Promise<api.Operations["set_key"]["answer"]> {
    return this.call("set_key", { path: { key }, body });
  }

  forgetGroupKey(key: string): Promise<api.Operations["forget_key"]["answer"]> {
    return this.call("forget_key", { path: { key } });
  }

  pauseGroupKey(key: string, durationMs?: number): Promise<api.Operations["pause_key"]["answer"]> {
    return this.call("pause_key", { path: { key }, body: durationMs === undefined ? {} : { durationMs } });
  }

  resumeGroupKey(key: string): Promise<api.Operations["resume_key"]["answer"]> {
    return this.call("resume_key", { path: { key } });
  }

  // -- API keys (an admin of every queue) -------------------------------------------------

  /** Makes an API key for a service; its `secret` is in this answer only. */
  createApiKey(body: api.KeyBody): Promise<api.NewKeyOut> {
    return this.call("create_key", { body });
  }

  async listApiKeys(): Promise<api.KeyOut[]> {
    return (await this.call("list_keys", {})).keys;
  }

  getApiKey(id: string): Promise<api.KeyOut> {
    return this.call("get_key_info", { path: { key_id: id } });
  }

  /** A new secret; the one before stops now, or after `graceSeconds`. */
  rotateApiKey(id: string, graceSeconds = 0): Promise<api.NewKeyOut> {
    return this.call("rotate_key", { path: { key_id: id }, body: { graceSeconds } });
  }

  /** Revokes the key: its next request is refused. */
  revokeApiKey(id: string): Promise<api.KeyOut> {
    return this.call("revoke_key", { path: { key_id: id } });
  }

  // -- the database's copy (replicate_to) -----------------------------------------------

  /** How the copy is doing, and its generations' files with their sizes now. */
  replication(): Promise<api.ReplicationOut> {
    return this.call("replication", {});
  }

  /** A standby says where its copy stands on its disk (what sync_standbys waits for). */
  standbyHolds(body: api.StandbyBody): Promise<api.StandbyOut> {
    return this.call("standby_holds", { body });
  }

  /** Bytes of a file of the copy from `offset` (at most 4 MiB): what a standby fetches. */
  async replicaFile(generation: string, path: string, offset = 0): Promise<Buffer> {
    const response = await this.connection.open("replica_file", { generation, path, offset });
    const chunks: Buffer[] = [];
    for await (const chunk of response) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }
}

/** Which method of QueueClient makes each operation. Typed over every operationId:
 * an operation added to the API and not to the client fails the build. */
export const METHOD_OF: { [K in OperationId]: keyof QueueClient } = {
  livez: "livez", list_queues: "listQueues", pause: "pause", resume: "resume", clean: "clean",
  metrics: "metrics", health: "health", nodes: "nodes", audit: "audit", openapi: "openapi",
  list_groups: "groups", get_policy: "groupPolicy", set_policy: "setGroupPolicy", drop_policy: "dropGroupPolicy",
  get_key: "groupKey", set_key: "setGroupKey", forget_key: "forgetGroupKey", pause_key: "pauseGroupKey",
  resume_key: "resumeGroupKey", add_job: "add", list_jobs: "listJobs", add_bulk: "addBulk",
  schedule_job: "schedule", failed_jobs: "failedJobs", stuck_jobs: "stuckJobs", get_job: "getJob",
  cancel_job: "cancelJob", retry_job: "retryJob", promote_job: "promoteJob", act: "act",
  failure_groups: "failureGroups", history: "history", running: "runningJobs", stream_jobs: "addStream",
  lease: "lease", heartbeat: "heartbeat", complete: "complete", fail: "fail", release: "release",
  complete_many: "completeMany", save_schedule: "saveSchedule", list_schedules: "listSchedules",
  get_schedule: "getSchedule", delete_schedule: "deleteSchedule", pause_schedule: "pauseSchedule",
  resume_schedule: "resumeSchedule", run_schedule: "runSchedule", prometheus_metrics: "prometheusMetrics",
  job_events: "events", append_log: "appendLog", job_log: "jobLog",
  job_dependents: "jobDependents", audit_trail: "auditTrail", create_key: "createApiKey", list_keys: "listApiKeys",
  get_key_info: "getApiKey", rotate_key: "rotateApiKey", revoke_key: "revokeApiKey", replication: "replication",
  replica_file: "replicaFile", standby_holds: "standbyHolds",
};
