import type { ModuleMetadata } from "@nestjs/common";
import type { api } from "@queueapp/client";

/** What the module connects to, and how its processors run. */
export interface QueueappModuleOptions {
  /** The appliance's base URL, e.g. http://127.0.0.1:3000. */
  url: string;
  /** Bearer token (an admin key, or one that may enqueue and work). */
  token?: string;
  /** The queue QueueService, the monitoring service and @Processor() without a name use (default "default"). */
  queue?: string;
  /** Jobs each processor runs at once, unless its @Process() says (default 1, as Bull's). */
  concurrency?: number;
  /** Each job's lease, renewed while its handler runs (default 30,000 ms). */
  leaseMs?: number;
  /** How long app.close() lets running jobs finish before handing them back (default 10,000 ms). */
  closeTimeoutMs?: number;
  /** The queue whose jobs run scheduleRecurringJob's callbacks (default "<queue>.recurring"). */
  recurringQueue?: string;
  /** Start no workers in this app instance (a producer only). */
  workers?: boolean;
}

export interface QueueappModuleAsyncOptions extends Pick<ModuleMetadata, "imports"> {
  useFactory: (...args: any[]) => QueueappModuleOptions | Promise<QueueappModuleOptions>;
  inject?: any[];
}

/** A queue registered for @InjectQueue(name), with its processors' concurrency. */
export interface QueueRegistration {
  name: string;
  concurrency?: number;
}

/** The seed's business factors, from which a priority is computed. */
export interface PriorityFactors {
  userTier?: "enterprise" | "premium" | "standard" | "free";
  urgency?: "critical" | "high" | "normal" | "low";
  businessImpact?: "revenue" | "customer" | "operational" | "internal";
  deadline?: Date | string;
}

/** A job's options, as the seed passes them to addJob (the appliance's own options). */
export type JobOptions = api.JobOptions;

/** A retry strategy in the seed's shape. */
export interface RetryStrategy {
  maxAttempts: number;
  backoffType: "exponential" | "fixed";
  initialDelay: number;
  maxDelay?: number;
  multiplier?: number;
  /** 0..1: each delay shortened by a random fraction of at most this. */
  jitter?: number;
}

export type QueueMetrics = api.MetricsOut;
export type QueueHealthStatus = api.HealthOut;
