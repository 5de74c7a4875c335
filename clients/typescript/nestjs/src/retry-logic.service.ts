import { Injectable } from "@nestjs/common";
import type { api } from "@queueapp/client";
import type { RetryStrategy } from "./interfaces";

// The appliance's default strategies per kind of job (queueapp/retry.py), in the
// seed's shape; a job whose options give no backoff retries by its name's kind.
const STRATEGIES: Record<string, RetryStrategy> = {
  email: { maxAttempts: 3, backoffType: "exponential", initialDelay: 2000, maxDelay: 60_000, multiplier: 2, jitter: 0.1 },
  payment: { maxAttempts: 3, backoffType: "exponential", initialDelay: 5000, maxDelay: 300_000, multiplier: 3, jitter: 0.2 },
  report: { maxAttempts: 3, backoffType: "fixed", initialDelay: 5000, multiplier: 2, jitter: 0 },
  http: { maxAttempts: 3, backoffType: "exponential", initialDelay: 1000, maxDelay: 30_000, multiplier: 2, jitter: 0.2 },
  backup: { maxAttempts: 3, backoffType: "fixed", initialDelay: 30_000, multiplier: 2, jitter: 0 },
  default: { maxAttempts: 3, backoffType: "exponential", initialDelay: 1000, maxDelay: 60_000, multiplier: 2, jitter: 0.1 },
};

// Without a maxDelay an exponential backoff stops growing at one day.
const UNCAPPED_CEILING_MS = 24 * 3600 * 1000;

/** Rounds as the appliance does (Python's round: a half to the even neighbour). */
function roundHalfEven(value: number): number {
  const floor = Math.floor(value);
  const part = value - floor;
  if (part !== 0.5) return Math.round(value);
  return floor % 2 === 0 ? floor : floor + 1;
}

/** The seed's RetryLogicService: strategies, and the delay before each retry. */
@Injectable()
export class RetryLogicService {
  /** The strategy for a kind of job (email, payment, report, http, backup); unknown kinds get default. */
  getDefaultStrategy(kind: string): RetryStrategy {
    return { ...(STRATEGIES[kind] ?? STRATEGIES.default) };
  }

  /** The strategy the appliance gives a job of this name when its options have no backoff:
   * the first kind the name mentions (send-email: email), else default. */
  strategyForJob(name: string): RetryStrategy {
    const lowered = name.toLowerCase();
    for (const kind of ["email", "payment", "report", "backup", "http", "webhook"]) {
      if (lowered.includes(kind)) return this.getDefaultStrategy(kind === "webhook" ? "http" : kind);
    }
    return this.getDefaultStrategy("default");
  }

  /** Milliseconds before retry number `attempt` (1 = after the first failure):
   * exponential is initialDelay * multiplier^(attempt - 1) up to maxDelay; fixed is
   * initialDelay; jitter shortens each by a random fraction of at most `jitter`. */
  calculateBackoffDelay(attempt: number, strategy: RetryStrategy, random: () => number = Math.random): number {
    if (!(attempt >= 1)) throw new RangeError("attempt counts from 1");
    let base = strategy.backoffType === "fixed"
      ? strategy.initialDelay
      : Math.min(strategy.initialDelay * (strategy.multiplier ?? 2) ** (attempt - 1), UNCAPPED_CEILING_MS);
    if (strategy.maxDelay !== undefined && strategy.maxDelay !== null) base = Math.min(base, strategy.maxDelay);
    if (strategy.jitter) base *= 1 - strategy.jitter * random();
    return roundHalfEven(base);
  }

  /** A strategy as the job options the appliance applies (attempts and backoff). */
  toJobOptions(strategy: RetryStrategy): Pick<api.JobOptions, "attempts" | "backoff"> {
    return {
      attempts: strategy.maxAttempts,
      backoff: {
        type: strategy.backoffType, delay: strategy.initialDelay, maxDelay: strategy.maxDelay ?? null,
        multiplier: strategy.multiplier ?? 2, jitter: strategy.jitter ?? 0,
      },
    };
  }
}
