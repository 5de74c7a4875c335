import { isTransient, QueueApiError } from "./errors";

/** How a client's own call is tried again: on connection errors, 429 and 5xx, with
 * exponential backoff and full jitter, until `deadline` (a time from Date.now()) or
 * until `signal` aborts. Anything else (a 4xx) is final and thrown at once. */
export interface RetryPolicy {
  firstDelayMs: number;
  maxDelayMs: number;
  deadline?: number;
  signal?: AbortSignal;
  onRetry?: (error: unknown, delayMs: number) => void;
}

export const DEFAULT_RETRY: RetryPolicy = { firstDelayMs: 100, maxDelayMs: 2_000 };

export async function retrying<T>(call: () => Promise<T>, policy: RetryPolicy = DEFAULT_RETRY): Promise<T> {
  let ceiling = policy.firstDelayMs;
  for (;;) {
    try {
      return await call();
    } catch (error) {
      if (!isTransient(error) || policy.signal?.aborted) throw error;
      let delay = Math.round(Math.random() * ceiling);
      if (error instanceof QueueApiError && error.retryAfterS !== undefined) {
        delay = Math.max(delay, Math.min(error.retryAfterS * 1000, policy.maxDelayMs * 4));
      }
      if (policy.deadline !== undefined && Date.now() + delay > policy.deadline) throw error;
      policy.onRetry?.(error, delay);
      await sleep(delay, policy.signal);
      ceiling = Math.min(ceiling * 2, policy.maxDelayMs);
    }
  }
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
