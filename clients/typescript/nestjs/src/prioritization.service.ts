import { Injectable } from "@nestjs/common";
import type { api } from "@queueapp/client";
import { JobPriority } from "./enums";
import type { PriorityFactors } from "./interfaces";

// The appliance's rule (queueapp/priority.py), point for point, so that a priority
// computed here is the one the appliance gives the same factors.
const USER_TIER: Record<string, number> = { enterprise: 3, premium: 2, standard: 1, free: 0 };
const URGENCY: Record<string, number> = { critical: 4, high: 3, normal: 1, low: 0 };
const BUSINESS_IMPACT: Record<string, number> = { revenue: 3, customer: 2, operational: 1, internal: 0 };
const HOUR_MS = 3_600_000;
const DEFAULT_ATTEMPTS: Record<number, number> = { 1: 5, 2: 4, 3: 3, 4: 2, 5: 1 };

// Recommended backoff and timeout per priority: important jobs retry sooner.
const RECOMMENDED: Record<number, { backoff: api.BackoffOptions; timeout: number }> = {
  1: { backoff: { type: "exponential", delay: 1000, maxDelay: 30_000, multiplier: 2, jitter: 0.1 }, timeout: 60_000 },
  2: { backoff: { type: "exponential", delay: 2000, maxDelay: 60_000, multiplier: 2, jitter: 0.1 }, timeout: 120_000 },
  3: { backoff: { type: "exponential", delay: 5000, maxDelay: 300_000, multiplier: 2, jitter: 0.1 }, timeout: 300_000 },
  4: { backoff: { type: "exponential", delay: 10_000, maxDelay: 600_000, multiplier: 2, jitter: 0.1 }, timeout: 600_000 },
  5: { backoff: { type: "fixed", delay: 60_000, maxDelay: null, multiplier: 2, jitter: 0 }, timeout: 1_800_000 },
};

function lookup(table: Record<string, number>, factor: string, value: string | undefined): number {
  if (value === undefined || value === null) return 0;
  if (!(value in table)) throw new RangeError(`${factor} must be one of ${Object.keys(table).join(", ")}, not '${value}'`);
  return table[value];
}

function deadlinePoints(deadline: Date | string | undefined, now: number): number {
  if (deadline === undefined || deadline === null) return 0;
  const at = deadline instanceof Date ? deadline.getTime() : Date.parse(deadline);
  if (Number.isNaN(at)) throw new RangeError(`deadline is not a time: ${String(deadline)}`);
  const left = at - now;
  if (left <= HOUR_MS) return 3;
  if (left <= 24 * HOUR_MS) return 2;
  if (left <= 7 * 24 * HOUR_MS) return 1;
  return 0;
}

/**
 * The seed's PrioritizationService. Points: userTier enterprise 3, premium 2,
 * standard 1, free 0; urgency critical 4, high 3, normal 1, low 0; businessImpact
 * revenue 3, customer 2, operational 1, internal 0; a deadline passed or within an
 * hour 3, a day 2, a week 1. At least 10 points is CRITICAL, 7 HIGH, 4 NORMAL, 2 LOW,
 * else BACKGROUND; urgency critical is never below HIGH.
 */
@Injectable()
export class PrioritizationService {
  calculatePriority(factors: PriorityFactors, now: number = Date.now()): JobPriority {
    const points = lookup(USER_TIER, "userTier", factors.userTier) + lookup(URGENCY, "urgency", factors.urgency) +
      lookup(BUSINESS_IMPACT, "businessImpact", factors.businessImpact) + deadlinePoints(factors.deadline, now);
    let priority = points >= 10 ? JobPriority.CRITICAL : points >= 7 ? JobPriority.HIGH : points >= 4
      ? JobPriority.NORMAL : points >= 2 ? JobPriority.LOW : JobPriority.BACKGROUND;
    if (factors.urgency === "critical") priority = Math.min(priority, JobPriority.HIGH);
    return priority;
  }

  /** Recommended options for a priority, ready for QueueService.addJob. */
  getJobOptions(priority: JobPriority | number): api.JobOptions {
    const recommended = RECOMMENDED[priority];
    if (!recommended) throw new RangeError("priority must be between 1 and 5");
    return { priority, attempts: DEFAULT_ATTEMPTS[priority], backoff: { ...recommended.backoff }, timeout: recommended.timeout };
  }
}
