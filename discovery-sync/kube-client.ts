import { request as undiciRequest } from "undici";
import type { KubeConnection } from "./kubeconfig.ts";

/**
 * The one place discovery-sync talks to the Kubernetes API: plain JSON requests with undici over
 * the connection kubeconfig.ts resolves (server, credentials, TLS, proxy). No generated models:
 * they cost memory and CPU per object, cannot page a LIST or reduce an object before it is kept,
 * and serialise a Lease's MicroTime with three fractional digits, which the API server refuses.
 * Every call has a timeout.
 */

export interface KubeStatus {
  kind?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
}

export class KubeError extends Error {
  readonly status: number;
  readonly reason: string;
  constructor(status: number, reason: string, message: string) {
    super(message);
    this.status = status;
    this.reason = reason;
  }
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  signal?: AbortSignal;
  /** Default 30 s. */
  timeoutMs?: number;
}

export interface KubeClient {
  request<T>(method: "GET" | "POST" | "PUT", path: string, options?: RequestOptions): Promise<T>;
  /**
   * A watch: `{ type: "OPEN" }` once the server accepted it, then each line of the response,
   * parsed, until the server ends it or `signal` aborts.
   */
  watch(
    path: string,
    query: RequestOptions["query"],
    signal: AbortSignal,
  ): AsyncGenerator<{ type: string; object: unknown }>;
}

function urlOf(server: string, path: string, query: RequestOptions["query"]): string {
  const url = new URL(server.replace(/\/$/, "") + path);
  for (const [key, value] of Object.entries(query ?? {}))
    if (value !== undefined) url.searchParams.set(key, String(value));
  return url.toString();
}

function failureOf(code: number, text: string): KubeError {
  let status: KubeStatus = {};
  try {
    status = JSON.parse(text) as KubeStatus;
  } catch {
    // not a Status body
  }
  return new KubeError(
    code,
    status.reason ?? String(code),
    status.message ?? (text.slice(0, 200) || `HTTP ${code}`),
  );
}

export function kubeClient(connection: KubeConnection): KubeClient {
  const server = () => connection.server;
  /**
   * One request with the connection's credentials and TLS, its failure said as a KubeError.
   * undici's request, not fetch: a LIST page is megabytes, and fetch's web streams read it at a
   * fraction of the speed.
   */
  const open = async (
    method: "GET" | "POST" | "PUT",
    url: string,
    body: unknown,
    signal: AbortSignal,
  ) => {
    const headers: Record<string, string> = { accept: "application/json" };
    const authorization = await connection.authorization();
    if (authorization) headers.authorization = authorization;
    if (body !== undefined) headers["content-type"] = "application/json";
    let response: Awaited<ReturnType<typeof undiciRequest>>;
    try {
      response = await undiciRequest(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        dispatcher: connection.dispatcher,
        signal,
      });
    } catch (error) {
      // A refused connection, a TLS failure, a timeout: its code, or its message.
      const cause = error as { code?: string; message?: string };
      throw new Error(`${method} ${new URL(url).pathname}: ${cause.code ?? cause.message}`, {
        cause: error,
      });
    }
    if (response.statusCode >= 400)
      throw failureOf(response.statusCode, await response.body.text().catch(() => ""));
    return response;
  };

  return {
    async request<T>(method: "GET" | "POST" | "PUT", path: string, options: RequestOptions = {}) {
      const timeout = AbortSignal.timeout(options.timeoutMs ?? 30_000);
      const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
      const response = await open(
        method,
        urlOf(server(), path, options.query),
        options.body,
        signal,
      );
      return (await response.body.json()) as T;
    },

    async *watch(path, query, signal) {
      const response = await open(
        "GET",
        urlOf(server(), path, { ...query, watch: "true" }),
        undefined,
        signal,
      );
      yield { type: "OPEN", object: null };
      const decoder = new TextDecoder();
      let buffered = "";
      for await (const chunk of response.body) {
        buffered += decoder.decode(chunk as Uint8Array, { stream: true });
        let newline = buffered.indexOf("\n");
        while (newline !== -1) {
          const line = buffered.slice(0, newline).trim();
          buffered = buffered.slice(newline + 1);
          if (line) yield JSON.parse(line) as { type: string; object: unknown };
          newline = buffered.indexOf("\n");
        }
      }
      const rest = buffered.trim();
      if (rest) yield JSON.parse(rest) as { type: string; object: unknown };
    },
  };
}
