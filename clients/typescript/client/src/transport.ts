/**
 * One HTTP exchange over Node's own http and https modules, on keep-alive
 * connections. (Node's fetch costs several times more per request, and a busy
 * producer or worker makes many.)
 */
import * as http from "node:http";
import * as https from "node:https";

export interface Exchange {
  status: number;
  statusText: string;
  headers: http.IncomingHttpHeaders;
  text: string;
}

export interface ExchangeOptions {
  method: string;
  headers: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
  /** The whole exchange, answer read included. */
  timeoutMs: number;
}

// Connections kept open between requests; closed after 4 s unused, before the
// appliance closes them itself (a request sent on a connection the server is closing
// would fail without having been read).
const AGENTS = {
  "http:": new http.Agent({ keepAlive: true, maxSockets: 256, timeout: 4_000 }),
  "https:": new https.Agent({ keepAlive: true, maxSockets: 256, timeout: 4_000 }),
};

/** A request that ran past its timeout. */
export class TimeoutError extends Error {
  override readonly name = "TimeoutError";
}

function open(url: string, options: Omit<ExchangeOptions, "timeoutMs">): Promise<http.IncomingMessage> & { request: http.ClientRequest } {
  const target = new URL(url);
  const module = target.protocol === "https:" ? https : http;
  const headers = { ...options.headers };
  if (options.body !== undefined) headers["content-length"] = String(Buffer.byteLength(options.body));
  let request!: http.ClientRequest;
  const answered = new Promise<http.IncomingMessage>((resolve, reject) => {
    request = module.request(target, {
      method: options.method, headers, agent: AGENTS[target.protocol as "http:" | "https:"], signal: options.signal,
    }, resolve);
    request.on("error", reject);
    request.end(options.body);
  });
  return Object.assign(answered, { request });
}

export function exchange(url: string, options: ExchangeOptions): Promise<Exchange> {
  return new Promise<Exchange>((resolve, reject) => {
    const answered = open(url, options);
    const timer = setTimeout(() => answered.request.destroy(new TimeoutError(`no answer within ${options.timeoutMs} ms`)),
      options.timeoutMs);
    answered.then((response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("error", (error) => { clearTimeout(timer); reject(error); });
      response.on("end", () => {
        clearTimeout(timer);
        resolve({
          status: response.statusCode ?? 0, statusText: response.statusMessage ?? "", headers: response.headers,
          text: Buffer.concat(chunks).toString("utf8"),
        });
      });
    }, (error) => { clearTimeout(timer); reject(error); });
  });
}

/** An answer to read as it arrives (a stream of events). */
export function stream(url: string, headers: Record<string, string>, signal?: AbortSignal): Promise<http.IncomingMessage> {
  return open(url, { method: "GET", headers, signal });
}

/** Connection failures worth trying again: refused, reset, timed out, unreachable. */
export const TRANSIENT_CODES = new Set([
  "ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "ECONNABORTED",
  "ENOTFOUND", "UND_ERR_SOCKET",
]);
