/**
 * Many callers' single requests, sent together.
 *
 * Applications add jobs one at a time from many concurrent callers, and workers
 * complete them one at a time; one HTTP request each caps them at what a request
 * costs, while the appliance stores a thousand jobs in one bulk for little more
 * than one. A `Coalescer` gathers the items given in the same turn of the event
 * loop (or while earlier batches are in flight) into one request, and answers each
 * caller with its own answer or its own error:
 *
 * - an item the appliance refuses on its own (a 400 naming `jobs.<n>`) fails only
 *   its caller; the others are sent again at once without it;
 * - any other failure (unreachable, 429, 503) fails every caller of that batch, as it
 *   would have failed each of their single requests.
 */
import { QueueApiError } from "./errors";

export interface CoalescerOptions {
  /** Items per request. */
  maxBatch?: number;
  /** Requests at once; more items wait and go in the next one. */
  maxInFlight?: number;
}

type Waiter<I, O> = { item: I; resolve: (value: O) => void; reject: (error: unknown) => void };

export class Coalescer<I, O> {
  private waiting: Waiter<I, O>[] = [];
  private inFlight = 0;
  private scheduled = false;
  private readonly idle = new Set<Promise<void>>();
  private readonly maxBatch: number;
  private readonly maxInFlight: number;

  /** `send` answers a batch in order, or throws; `refused` names the one item an
   * error is about (its index), or undefined when it is about the whole batch. */
  constructor(
    private readonly send: (items: I[]) => Promise<O[]>,
    private readonly refused: (error: unknown) => number | undefined = refusedJob,
    options: CoalescerOptions = {},
  ) {
    this.maxBatch = options.maxBatch ?? 1_000;
    this.maxInFlight = options.maxInFlight ?? 4;
  }

  add(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      if (this.waiting.length >= this.maxBatch) this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        // the items given before the event loop next turns go together
        setImmediate(() => this.flush());
      }
    });
  }

  /** Sends what waits, and waits for every batch in flight. */
  async drain(): Promise<void> {
    while (this.waiting.length || this.idle.size) {
      this.flush();
      if (this.idle.size) await Promise.allSettled([...this.idle]);
    }
  }

  private flush(): void {
    this.scheduled = false;
    while (this.waiting.length && this.inFlight < this.maxInFlight) {
      const batch = this.waiting.splice(0, this.maxBatch);
      this.inFlight += 1;
      const sending = this.sendBatch(batch).finally(() => {
        this.idle.delete(sending);
        this.inFlight -= 1;
        if (this.waiting.length) this.flush();
      });
      this.idle.add(sending);
    }
  }

  private async sendBatch(batch: Waiter<I, O>[]): Promise<void> {
    while (batch.length) {
      let answers: O[];
      try {
        answers = await this.send(batch.map((w) => w.item));
      } catch (error) {
        const index = this.refused(error);
        if (index === undefined || index < 0 || index >= batch.length) {
          for (const waiter of batch) waiter.reject(error);
          return;
        }
        batch.splice(index, 1)[0].reject(asSingle(error));
        continue;
      }
      batch.forEach((waiter, i) => waiter.resolve(answers[i]));
      return;
    }
  }
}

const JOB_FIELD = /^jobs\.(\d+)(\.|$)/;

/** The one job of a bulk that a 400 is about (`jobs.3.options.priority` -> 3). */
export function refusedJob(error: unknown): number | undefined {
  if (!(error instanceof QueueApiError) || error.status !== 400 || !error.details.length) return undefined;
  const match = JOB_FIELD.exec(String(error.details[0].field ?? ""));
  return match ? Number(match[1]) : undefined;
}

/** A bulk's error about one job, as that job's own request would have had it. */
function asSingle(error: unknown): unknown {
  if (!(error instanceof QueueApiError)) return error;
  const details = error.details.map((d) => ({ ...d, field: String(d.field ?? "").replace(JOB_FIELD, "") }));
  const message = error.message.replace(/^\d+ \S+: /, "");
  return new QueueApiError(error.status, error.code, message, details, error.retryAfterS);
}
