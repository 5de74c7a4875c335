/**
 * A worker: leases jobs from the appliance and runs a handler on each.
 *
 *     const worker = new Worker("http://127.0.0.1:3000", { queue: "default", concurrency: 50 },
 *       async (job) => { await job.progress(50); return { sent: true }; });
 *     worker.on("failed", (job, error) => console.warn(job.id, error.message));
 *     process.on("SIGTERM", () => worker.close());
 *
 * It leases only as many jobs as it has free slots (several in one request), keeps
 * each running job's lease alive by heartbeats at a third of the lease, completes
 * (many at once) or fails it with the error's message and stack, and tries its own
 * calls again on connection errors, 429 and 5xx with backoff and jitter. The
 * appliance takes a job's completion only under its live lease token, so a job is
 * never completed twice. `close()` stops leasing, lets running handlers finish up to
 * a timeout and hands back (without counting the attempt) what it has not finished.
 * A 401 or 403 stops the worker with a `WorkerRefused` error.
 */
import { EventEmitter } from "node:events";
import { hostname } from "node:os";
import type * as api from "./api";
import { Job, JobData, QueueClient } from "./client";
import { Coalescer } from "./coalesce";
import { QueueApiError, RetryLater, UnrecoverableError, WorkerRefused } from "./errors";
import { ConnectionOptions } from "./http";
import { retrying } from "./retry";

export interface WorkerOptions extends ConnectionOptions {
  /** Job names to lease (default: every name without a handler in the appliance). */
  names?: string[];
  /** Handlers running at once (default 1, as Bull's). */
  concurrency?: number;
  /** Jobs leased ahead of a free slot, so that the next starts without waiting for a
   * request; their leases are kept alive too, and close() hands them back unstarted.
   * Default: as many as the jobs run in one request's round trip (measured), at least
   * the concurrency and at most 20 times it; 0: lease only for free slots. */
  prefetch?: number;
  /** Each lease, renewed at a third of it while the handler runs (default 30,000). */
  leaseMs?: number;
  /** How long one lease request waits for a job to arrive (default 5,000); also the
   * longest close() waits for an open request to come back (it hands back what it brings). */
  pollMs?: number;
  /** How long close() lets running handlers finish before handing them back (default 10,000). */
  closeTimeoutMs?: number;
  /** Start leasing at once (default true); else call run(). */
  autorun?: boolean;
  /** Kept with each job it runs as who ran it (default: host:pid). */
  name?: string;
}

type Leased = Job & { leaseToken: string; leaseExpiresAt: string | null; traceparent?: string | null;
  tracestate?: string | null };

/** The OpenTelemetry API when the program has it (an optional peer dependency): each
 * job then runs in a span that is the child of its attempt's, through the program's
 * own tracer provider and propagator. Without it, nothing is traced here. */
const otel: any = (() => {
  try {
    return require("@opentelemetry/api");
  } catch {
    return null;
  }
})();

const MAX_LOG_LINE = 2_000;  // characters of a log line the appliance takes

/** The job a handler is given. */
export class WorkerJob<D extends JobData = JobData> {
  readonly id: string;
  readonly name: string;
  readonly queue: string;
  readonly data: D;
  /** The job's options as stored (Bull calls them `opts`). */
  readonly opts: Record<string, any>;
  readonly priority: number;
  readonly attempts: number;
  /** This attempt's number: 1 on the first. */
  readonly attemptsMade: number;
  /** When the job was added (ms since the epoch). */
  readonly timestamp: number;
  readonly leaseToken: string;
  /** The W3C trace context this attempt runs under (null: the job has no trace). */
  readonly traceparent: string | null;
  readonly tracestate: string | null;
  /** Aborts when the job's lease is lost (cancelled, or taken back) or its timeout passes. */
  readonly signal: AbortSignal;
  /** The last progress reported. */
  progressValue: unknown;

  constructor(leased: Leased, signal: AbortSignal, private readonly report: (value: unknown) => Promise<void>,
    private readonly append: (lines: string[]) => Promise<unknown>) {
    this.id = leased.id;
    this.name = leased.name;
    this.queue = leased.queue;
    this.data = leased.data as D;
    this.opts = leased.options;
    this.priority = leased.priority;
    this.attempts = leased.attempts;
    this.attemptsMade = leased.attemptsMade;
    this.timestamp = Date.parse(leased.createdAt);
    this.leaseToken = leased.leaseToken;
    this.traceparent = leased.traceparent ?? null;
    this.tracestate = leased.tracestate ?? null;
    this.progressValue = leased.progress;
    this.signal = signal;
  }

  /** Reports progress (a number from 0 to 100, or a JSON object): stored on the job,
   * visible over the API at once, and the lease renewed. */
  async progress(value: number | Record<string, unknown>): Promise<void> {
    await this.report(value);
    this.progressValue = value;
  }

  /** Appends to the job's log, kept with the job and shown on its page: each text a
   * line (one with newlines, several), each cut to 2,000 characters. */
  async log(...texts: string[]): Promise<void> {
    const lines = texts.flatMap((text) => String(text).split(/\r?\n/))
      .map((line) => (line.length <= MAX_LOG_LINE ? line : `${line.slice(0, MAX_LOG_LINE - 1)}\u2026`));
    for (let start = 0; start < lines.length; start += 100) await this.append(lines.slice(start, start + 100));
  }

  /** BullMQ's name for progress(). */
  updateProgress(value: number | Record<string, unknown>): Promise<void> {
    return this.progress(value);
  }
}

export type Processor<D extends JobData = JobData, R = unknown> = (job: WorkerJob<D>) => Promise<R> | R;

interface Running {
  job: WorkerJob;
  controller: AbortController;
  beats: NodeJS.Timeout;
  /** Handed back by close(): its outcome, if it comes, is not sent. */
  abandoned: boolean;
  /** The appliance no longer holds this lease for us (409): nothing more is sent. */
  lost: boolean;
  done: Promise<void>;
}

export declare interface Worker<D extends JobData = JobData, R = unknown> {
  on(event: "active", listener: (job: WorkerJob<D>) => void): this;
  on(event: "progress", listener: (job: WorkerJob<D>, progress: unknown) => void): this;
  on(event: "completed", listener: (job: WorkerJob<D>, result: R) => void): this;
  on(event: "failed", listener: (job: WorkerJob<D>, error: Error) => void): this;
  on(event: "error", listener: (error: Error) => void): this;
  on(event: "closed", listener: () => void): this;
}

export class Worker<D extends JobData = JobData, R = unknown> extends EventEmitter {
  readonly client: QueueClient;
  readonly concurrency: number;
  readonly leaseMs: number;
  readonly pollMs: number;
  readonly closeTimeoutMs: number;
  readonly names?: string[];
  /** Who this worker is, as each job it runs keeps it. */
  readonly name: string;
  /** Jobs this worker completed, failed, and handed back. */
  readonly counts = { completed: 0, failed: 0, released: 0 };
  /** Every job this worker holds a lease on, until its outcome is delivered. */
  private readonly running = new Map<string, Running>();
  /** Of those, the jobs whose handler has not returned: what concurrency bounds. A
   * finished handler frees its slot at once; its outcome goes on being sent. */
  private readonly handling = new Set<string>();
  /** Leased ahead, not started: they start, in lease order, as slots free. */
  private readonly queued: Running[] = [];
  private readonly fixedPrefetch?: number;
  /** Moving averages: a handler's run, and a lease request that brought jobs. */
  private handlerMs?: number;
  private leaseRttMs?: number;
  private readonly completions: Coalescer<api.CompleteItem, api.CompleteResult>;
  private readonly stopping = new AbortController();
  private slotFreed?: () => void;
  private loop?: Promise<void>;
  private closing?: Promise<void>;
  private closeTimeout?: number;

  constructor(target: string | QueueClient, options: WorkerOptions, private readonly handler: Processor<D, R>) {
    super();
    this.client = typeof target === "string" ? new QueueClient(target, { ...options, coalesce: false }) : target;
    if (options.queue && typeof target !== "string") this.client = target.forQueue(options.queue, { coalesce: false });
    this.concurrency = options.concurrency ?? 1;
    this.fixedPrefetch = options.prefetch;
    this.leaseMs = options.leaseMs ?? 30_000;
    this.pollMs = options.pollMs ?? 5_000;
    this.closeTimeoutMs = options.closeTimeoutMs ?? 10_000;
    this.names = options.names;
    this.name = options.name ?? `${hostname()}:${process.pid}`;
    if (!(this.concurrency >= 1 && this.concurrency <= 1000)) throw new RangeError("concurrency is 1 to 1000");
    if (this.fixedPrefetch !== undefined && !(this.fixedPrefetch >= 0 && this.fixedPrefetch <= 1000)) {
      throw new RangeError("prefetch is 0 to 1000");
    }
    this.completions = new Coalescer((items) => this.sendCompletions(items), () => undefined);
    if (options.autorun ?? true) void this.run().catch(() => undefined);
  }

  /** Jobs leased ahead of free slots: the setting, or enough to keep the slots busy
   * through one lease request's round trip. */
  get prefetch(): number {
    if (this.fixedPrefetch !== undefined) return this.fixedPrefetch;
    if (this.handlerMs === undefined || this.leaseRttMs === undefined) return this.concurrency;
    const perTrip = Math.ceil(this.concurrency * this.leaseRttMs / Math.max(this.handlerMs, 0.05));
    return Math.min(Math.max(perTrip, this.concurrency), 20 * this.concurrency, 1000);
  }

  /** Handlers running now. */
  get active(): number {
    return this.handling.size;
  }

  get isRunning(): boolean {
    return this.loop !== undefined && !this.stopping.signal.aborted;
  }

  /** Leases and runs jobs until close(); rejects with WorkerRefused on 401/403. */
  run(): Promise<void> {
    this.loop ??= this.leaseLoop();
    return this.loop;
  }

  /** Stops leasing, lets running handlers finish for up to `timeoutMs`, hands back
   * the rest, and sends every outcome still owed. Safe to call more than once. */
  close(timeoutMs = this.closeTimeoutMs): Promise<void> {
    this.closeTimeout = timeoutMs;
    this.stopping.abort();
    this.slotFreed?.();
    this.closing ??= (async () => {
      if (this.loop) await this.loop.catch(() => undefined);
      else await this.drain();
      this.emit("closed");
    })();
    return this.closing;
  }

  private async leaseLoop(): Promise<void> {
    const stop = this.stopping.signal;
    try {
      while (!stop.aborted) {
        // room for the running and the prefetched; outcomes still being sent count too,
        // beyond as many again as the concurrency
        const ahead = this.concurrency + this.prefetch;
        const free = Math.min(ahead - this.handling.size - this.queued.length, ahead + this.concurrency - this.running.size);
        if (free <= 0) {
          await new Promise<void>((resolve) => { this.slotFreed = resolve; });
          // the handlers that finish in this turn of the event loop free their slots
          // too: one lease request for all of them, not one each
          await new Promise((resolve) => setImmediate(resolve));
          continue;
        }
        let leased: Leased[];
        try {
          // Not aborted by close(): jobs the appliance hands out as the poll is cut off
          // would be lost to this worker until their leases ran out. A close waits for
          // the poll (pollMs at most) and hands back what it brings.
          const asked = performance.now();
          leased = await retrying(
            () => this.client.lease({ names: this.names, max: Math.min(free, 1000), leaseMs: this.leaseMs, waitMs: this.pollMs, worker: this.name }),
            // capped low: a worker idle long after the appliance is back loses its throughput
            { firstDelayMs: 200, maxDelayMs: 2_000, signal: stop, onRetry: (error) => this.warn(error) },
          );
          // a request that waited for jobs to arrive says nothing of the round trip
          if (leased.length === Math.min(free, 1000)) this.leaseRttMs = average(this.leaseRttMs, performance.now() - asked);
        } catch (error) {
          if (stop.aborted) break;
          throw refusal(error) ?? error;
        }
        for (const job of leased) {
          if (stop.aborted) await this.release(job.id, job.leaseToken);  // leased while closing: hand it back
          else this.start(job);
        }
      }
    } catch (error) {
      if (!stop.aborted) {
        this.stopping.abort();
        await this.drain();
        this.emitError(error as Error);
        throw error;
      }
    }
    await this.drain();
  }

  /** A leased job: its lease kept alive from now on; it starts when a slot is free. */
  private start(leased: Leased): void {
    const controller = new AbortController();
    const job = new WorkerJob<D>(leased, controller.signal, (value) => this.reportProgress(entry, value),
      (lines) => retrying(() => this.client.appendLog(leased.id, leased.leaseToken, lines),
        { firstDelayMs: 100, maxDelayMs: 1_000, deadline: Date.now() + this.leaseMs / 3 }));
    const beats = setInterval(() => void this.beat(entry), Math.max(this.leaseMs / 3, 100));
    beats.unref?.();
    const entry: Running = { job, controller, beats, abandoned: false, lost: false, done: Promise.resolve() };
    this.running.set(job.id, entry);
    this.queued.push(entry);
    this.pump();
  }

  /** Starts queued jobs while there are free slots. */
  private pump(): void {
    while (this.handling.size < this.concurrency && this.queued.length && !this.stopping.signal.aborted) {
      const entry = this.queued.shift() as Running;
      if (entry.lost) {  // taken back while it waited
        this.running.delete(entry.job.id);
        continue;
      }
      const id = entry.job.id;
      this.handling.add(id);
      entry.done = this.runOne(entry).catch((error) => this.emitError(asError(error))).finally(() => {
        clearInterval(entry.beats);
        this.running.delete(id);
        if (this.handling.delete(id)) this.pump();
        this.slotFreed?.();
      });
    }
  }

  /** The handler has returned: its slot is free for the next job. */
  private handled(entry: Running): void {
    this.handling.delete(entry.job.id);
    this.pump();
    this.slotFreed?.();
  }

  private async runOne(entry: Running): Promise<void> {
    const job = entry.job as WorkerJob<D>;
    this.emit("active", job);
    let result: R;
    const began = performance.now();
    try {
      result = await this.withTimeout(entry, () => this.traced(job, () => this.handler(job)));
      this.handlerMs = average(this.handlerMs, performance.now() - began);
    } catch (error) {
      this.handlerMs = average(this.handlerMs, performance.now() - began);
      if (entry.abandoned || entry.lost) return;
      this.handled(entry);
      await this.sendFailure(entry, asError(error));
      return;
    }
    if (entry.abandoned || entry.lost) return;
    this.handled(entry);
    await this.sendCompletion(entry, result);
  }

  /** Runs the handler in a span that is the child of the attempt's (when the program
   * has the OpenTelemetry API and the job a trace): the handler's own spans are its. */
  private async traced<T>(job: WorkerJob<D>, run: () => Promise<T> | T): Promise<T> {
    if (otel === null || job.traceparent === null) return await run();
    const carrier: Record<string, string> = { traceparent: job.traceparent };
    if (job.tracestate) carrier.tracestate = job.tracestate;
    const parent = otel.propagation.extract(otel.ROOT_CONTEXT, carrier);
    const span = otel.trace.getTracer("queueapp.worker").startSpan(`process ${job.queue}`, {
      kind: otel.SpanKind.CONSUMER,
      attributes: {
        "messaging.system": "queueapp", "messaging.destination.name": job.queue,
        "messaging.operation.type": "process", "messaging.operation.name": "process",
        "messaging.message.id": job.id, "queueapp.job.name": job.name, "queueapp.attempt": job.attemptsMade,
        "queueapp.worker": this.name,
      },
    }, parent);
    try {
      return await otel.context.with(otel.trace.setSpan(parent, span), run);
    } catch (error) {
      span.setStatus({ code: otel.SpanStatusCode.ERROR, message: asError(error).message.slice(0, 500) });
      span.setAttribute("error.type", "job_failed");
      throw error;
    } finally {
      span.end();
    }
  }

  private async withTimeout<T>(entry: Running, run: () => Promise<T> | T): Promise<T> {
    const timeout = Number(entry.job.opts.timeout);
    if (!(timeout > 0)) return await run();
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        entry.controller.abort(new Error(`timed out after ${timeout} ms`));
        reject(new Error(`timed out after ${timeout} ms`));
      }, timeout);
    });
    try {
      return await Promise.race([Promise.resolve().then(run), expired]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async sendCompletion(entry: Running, result: R): Promise<void> {
    const { job } = entry;
    let answer: api.CompleteResult;
    try {
      answer = await this.completions.add({ id: job.id, leaseToken: job.leaseToken, result: result ?? null });
    } catch (error) {
      if (!this.stopRefused(error)) {
        this.emitError(new Error(`job ${job.id}: completion not delivered: ${asError(error).message}`));
      }
      return;
    }
    if (answer.ok) {
      this.counts.completed += 1;
      this.emit("completed", job, result);
    } else {
      this.emitError(new Error(`job ${job.id}: completion refused: ${answer.error?.message ?? "lease lost"}`));
    }
  }

  /** Completions of many jobs in one request, tried again while the appliance is
   * unreachable or busy, for as long as the leases hold (heartbeats keep them). A
   * completion refused after a retry may be one the lost answer had committed: the
   * job's state says. */
  private async sendCompletions(items: api.CompleteItem[]): Promise<api.CompleteResult[]> {
    let tries = 0;
    const results = await retrying(() => {
      tries += 1;
      return this.client.completeMany(items);
    }, { firstDelayMs: 100, maxDelayMs: 2_000, deadline: Date.now() + this.leaseMs, onRetry: (e) => this.warn(e) });
    if (tries === 1) return results;
    return Promise.all(results.map(async (answer) => {
      if (answer.ok) return answer;
      const job = await retrying(() => this.client.findJob(answer.id),
        { firstDelayMs: 100, maxDelayMs: 1_000, deadline: Date.now() + this.leaseMs }).catch(() => null);
      return job?.state === "completed" ? { ...answer, ok: true, state: "completed" } : answer;
    }));
  }

  private async sendFailure(entry: Running, error: Error): Promise<void> {
    const { job } = entry;
    const body: api.FailBody = {
      leaseToken: job.leaseToken,
      error: messageOf(error).slice(0, 10_000) || "failed",
      retry: !(error instanceof UnrecoverableError),
    };
    if (error instanceof RetryLater) body.retryAfterMs = Math.max(0, Math.min(Math.round(error.delayMs), 86_400_000));
    if (error.stack) body.stack = error.stack.slice(0, 100_000);
    let tries = 0;
    try {
      await retrying(() => {
        tries += 1;
        return this.client.fail(job.id, body);
      }, { firstDelayMs: 100, maxDelayMs: 2_000, deadline: Date.now() + this.leaseMs, onRetry: (e) => this.warn(e) });
    } catch (failure) {
      if (this.stopRefused(failure)) return;
      if (!(tries > 1 && failure instanceof QueueApiError && failure.status === 409)) {
        this.emitError(new Error(`job ${job.id}: failure not delivered: ${asError(failure).message}`));
        return;
      }
    }
    this.counts.failed += 1;
    this.emit("failed", job, error);
  }

  private async reportProgress(entry: Running, value: unknown): Promise<void> {
    const body = { leaseToken: entry.job.leaseToken, progress: value as api.HeartbeatBody["progress"], leaseMs: this.leaseMs };
    try {
      await retrying(() => this.client.heartbeat(entry.job.id, body),
        { firstDelayMs: 100, maxDelayMs: 1_000, deadline: Date.now() + this.leaseMs / 3 });
    } catch (error) {
      if (error instanceof QueueApiError && error.status === 409) this.lose(entry);
      throw refusal(error) ?? error;
    }
    this.emit("progress", entry.job, value);
  }

  private async beat(entry: Running): Promise<void> {
    try {
      await this.client.heartbeat(entry.job.id, { leaseToken: entry.job.leaseToken, leaseMs: this.leaseMs });
    } catch (error) {
      if (error instanceof QueueApiError && error.status === 409) this.lose(entry);
      else this.stopRefused(error);
      // else: briefly unreachable; the lease has two more beats of slack
    }
  }

  /** The appliance took the job back (cancelled, or its lease ran out): stop it. */
  private lose(entry: Running): void {
    if (entry.lost) return;
    entry.lost = true;
    clearInterval(entry.beats);
    entry.controller.abort(new Error("the job's lease was lost (cancelled, or taken back)"));
  }

  private async release(id: string, leaseToken: string): Promise<void> {
    try {
      await retrying(() => this.client.release(id, leaseToken), { firstDelayMs: 100, maxDelayMs: 1_000, deadline: Date.now() + 5_000 });
      this.counts.released += 1;
    } catch {
      // the lease runs out by itself and the job goes back then
    }
  }

  /** Hands back the jobs not started; lets running jobs finish for up to the close
   * timeout, hands back the rest, and waits for every outcome still being sent. */
  private async drain(): Promise<void> {
    const timeout = this.closeTimeout ?? this.closeTimeoutMs;
    await Promise.all(this.queued.splice(0).map(async (entry) => {
      entry.abandoned = true;
      clearInterval(entry.beats);
      this.running.delete(entry.job.id);
      if (!entry.lost) await this.release(entry.job.id, entry.job.leaseToken);
    }));
    const pending = [...this.running.values()];
    if (pending.length) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled(pending.map((e) => e.done)),
        new Promise((resolve) => { timer = setTimeout(resolve, timeout); }),
      ]);
      clearTimeout(timer);
    }
    const still = [...this.running.values()].filter((entry) => this.handling.has(entry.job.id));
    const sending = [...this.running.values()].filter((entry) => !this.handling.has(entry.job.id));
    await Promise.all(still.map(async (entry) => {
      entry.abandoned = true;
      clearInterval(entry.beats);
      entry.controller.abort(new Error("the worker is closing"));
      this.handling.delete(entry.job.id);
      this.running.delete(entry.job.id);
      await this.release(entry.job.id, entry.job.leaseToken);
    }));
    await this.completions.drain();
    await Promise.allSettled(sending.map((e) => e.done));
  }

  /** Stops the worker for good when `error` is a 401 or 403: no retry can help. */
  private stopRefused(error: unknown): boolean {
    const refused = refusal(error);
    if (!refused) return false;
    if (!this.stopping.signal.aborted) {
      this.emitError(refused);
      void this.close(0);
    }
    return true;
  }

  private warn(error: unknown): void {
    this.emit("retrying", error);
  }

  private emitError(error: Error): void {
    if (this.listenerCount("error")) this.emit("error", error);
    else console.error(`queueapp worker: ${error.message}`);
  }
}

/** An exponentially weighted moving average, started by the first value. */
function average(current: number | undefined, value: number): number {
  return current === undefined ? value : current + 0.2 * (value - current);
}

/** A 401 or 403 as the worker's refusal; undefined for anything else. */
function refusal(error: unknown): WorkerRefused | undefined {
  if (!(error instanceof QueueApiError) || (error.status !== 401 && error.status !== 403)) return undefined;
  return new WorkerRefused(`the appliance refused this worker (${error.message}); check the token`);
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(typeof error === "string" ? error : JSON.stringify(error));
}

/** What a failed attempt records: the message, with the error's type unless plain. */
function messageOf(error: Error): string {
  const plain = ["Error", "UnrecoverableError", "RetryLater"].includes(error.name);
  return plain || !error.name ? error.message : `${error.name}: ${error.message}`;
}


