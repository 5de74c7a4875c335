import { TRANSIENT_CODES } from "./transport";

/** An error answer of the appliance, in its JSON shape ({"error": {code, message, details}}). */
export class QueueApiError extends Error {
  override readonly name = "QueueApiError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Array<{ field?: string; message?: string; [key: string]: unknown }> = [],
    /** Seconds the appliance asked to wait (429, 503), when it said. */
    readonly retryAfterS?: number,
    /** An error status's answer that is not an error object (health's 503). */
    readonly body?: unknown,
  ) {
    super(`${status} ${code}: ${message}`);
  }
}

/** The appliance refuses this worker (a wrong or missing token, a key without the
 * right): trying again cannot help, so the worker stops. */
export class WorkerRefused extends Error {
  override readonly name = "WorkerRefused";
}

/** Throw from a handler to fail the job for good, without further attempts. */
export class UnrecoverableError extends Error {
  override readonly name = "UnrecoverableError";
}

/** Throw from a handler to retry after `delayMs` instead of the job's backoff (an
 * upstream said when: HTTP 429 with Retry-After). The attempt still counts. */
export class RetryLater extends Error {
  override readonly name = "RetryLater";
  constructor(message: string, readonly delayMs: number) {
    super(message);
  }
}

/** A failure that may pass: the appliance unreachable, restarting or busy. */
export function isTransient(error: unknown): boolean {
  if (error instanceof QueueApiError) {
    return error.status >= 500 || error.status === 429 || error.code === "bad_response";
  }
  if (error instanceof Error) {
    // refused, reset, unreachable (see transport.ts); a request past its timeout
    const code = (error as Error & { code?: string }).code;
    return error.name === "TimeoutError" || (code !== undefined && TRANSIENT_CODES.has(code));
  }
  return false;
}
