import { OPERATIONS, OperationId, Operations } from "./api";
import { QueueApiError } from "./errors";
import { Exchange, exchange, stream } from "./transport";
import type { IncomingMessage } from "node:http";

export interface ConnectionOptions {
  /** Bearer token: an admin or worker key (env QUEUEAPP_TOKEN is not read here). */
  token?: string;
  /** The queue calls go to unless they name another (default "default"). */
  queue?: string;
  /** How long one request may take, in ms (default 60,000; a long poll adds its wait). */
  timeoutMs?: number;
  /** Headers sent with every request (a proxy's own authentication, say). */
  headers?: Record<string, string>;
}

type Empty = Record<string, never>;
type Maybe<T> = keyof T extends never ? { [K in keyof T]?: T[K] } : T;

/** What one operation is called with: its path parameters, query and body. */
export type CallParams<K extends OperationId> =
  (Operations[K]["pathParams"] extends Empty ? { path?: undefined } : { path: Operations[K]["pathParams"] }) &
  { query?: Maybe<Operations[K]["query"]> } &
  (Operations[K]["body"] extends undefined ? { body?: undefined } : { body: Operations[K]["body"] }) &
  { signal?: AbortSignal; timeoutMs?: number };

export type Answer<K extends OperationId> = Operations[K]["answer"];

/** Sends the API's operations over HTTP: one place for the URL, the token, the
 * queue parameter, timeouts and the error shape. */
export class Connection {
  readonly baseUrl: string;
  readonly queue: string;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number;

  constructor(baseUrl: string, options: ConnectionOptions = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.queue = options.queue ?? "default";
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.headers = { ...(options.headers ?? {}) };
    if (options.token) this.headers.authorization = `Bearer ${options.token}`;
  }

  /** The same appliance and token, another default queue. */
  withQueue(queue: string): Connection {
    const copy = Object.create(Connection.prototype) as Connection;
    Object.assign(copy, this, { queue });
    return copy;
  }

  url<K extends OperationId>(op: K, params: { path?: Record<string, string>; query?: Record<string, unknown> }): string {
    const spec = OPERATIONS[op];
    const route = spec.path.replace(/\{(\w+)\}/g, (_, name: string) => {
      const value = params.path?.[name];
      if (value === undefined) throw new TypeError(`${op} needs path parameter ${name}`);
      return encodeURIComponent(String(value));
    });
    const query = new URLSearchParams();
    // the client's queue unless the call names one, or says none (null: every queue's)
    if (spec.queued && params.query?.queue === undefined) query.set("queue", this.queue);
    for (const [name, value] of Object.entries(params.query ?? {})) {
      if (value !== undefined && value !== null) query.set(name, String(value));
    }
    const text = query.toString();
    return `${this.baseUrl}${route}${text ? `?${text}` : ""}`;
  }

  async call<K extends OperationId>(op: K, params: CallParams<K>): Promise<Answer<K>> {
    const spec = OPERATIONS[op];
    const loose = params as { path?: Record<string, string>; query?: Record<string, unknown>; body?: unknown };
    const headers: Record<string, string> = { ...this.headers };
    let body: string | undefined;
    if (loose.body !== undefined) {
      body = spec.textBody ? String(loose.body) : JSON.stringify(loose.body);
      headers["content-type"] = spec.textBody ? "application/x-ndjson" : "application/json";
    }
    const response = await exchange(this.url(op, loose), {
      method: spec.method, headers, body, signal: params.signal, timeoutMs: params.timeoutMs ?? this.timeoutMs,
    });
    const text = response.text;
    if (response.status >= 400) throw errorOf(response);
    if (spec.textAnswer) return text as Answer<K>;
    try {
      return (text ? JSON.parse(text) : undefined) as Answer<K>;
    } catch {
      throw new QueueApiError(response.status, "bad_response", `not a queueapp answer: ${JSON.stringify(text.slice(0, 120))}`);
    }
  }

  /** An answer read as it arrives (the events stream): the raw response. */
  async open(op: OperationId, query: Record<string, unknown>, signal?: AbortSignal): Promise<IncomingMessage> {
    const response = await stream(this.url(op, { query }), this.headers, signal);
    if ((response.statusCode ?? 0) >= 400) {
      const chunks: Buffer[] = [];
      for await (const chunk of response) chunks.push(chunk as Buffer);
      throw errorOf({ status: response.statusCode ?? 0, statusText: response.statusMessage ?? "", headers: response.headers,
        text: Buffer.concat(chunks).toString("utf8") });
    }
    return response;
  }
}

function errorOf(response: Exchange): QueueApiError {
  const text = response.text;
  const header = response.headers["retry-after"];
  const retryAfter = Number(header);
  const wait = header !== undefined && Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter : undefined;
  try {
    const parsed = JSON.parse(text) as { error?: { code: string; message: string; details?: [] } };
    const error = parsed.error;
    if (error && typeof error === "object") {
      return new QueueApiError(response.status, error.code, error.message, error.details ?? [], wait);
    }
    return new QueueApiError(response.status, `http_${response.status}`, response.statusText, [], wait, parsed);
  } catch {
    // a proxy's HTML page, say: keep the status, which says whether to try again
    return new QueueApiError(response.status, "bad_response", `not a queueapp answer: ${JSON.stringify(text.slice(0, 120))}`, [], wait);
  }
}
