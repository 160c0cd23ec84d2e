import { dropHopByHop, forwardHeaders } from "../core/forward-headers.ts";
import type { Candidate } from "../core/pick.ts";
import { type Env, settingsOf } from "../env.ts";

/**
 * The one place the worker talks to backends. The target URL is the endpoint's origin plus the
 * request's path and query: nothing the client sends chooses where the request goes.
 */

export interface Upstream {
  /** `fetch`, or a Workers binding's `fetch` (Workers VPC, Tunnel) for a pool with transport. */
  fetch(url: string, init: RequestInit): Promise<Response>;
}

/** The runtime's own fetch: one object for every try, nothing built per request. */
const DIRECT: Upstream = { fetch: (url, init) => fetch(url, init) };

export class TransportMissing extends Error {}

export function upstreamFor(candidate: Candidate, env: Env): Upstream {
  const binding = candidate.pool.transportBinding;
  if (binding === undefined) return DIRECT;
  // A pool document names the binding; only an operator's setting lets it be used, so that a
  // pool in KV cannot send traffic through any binding the worker happens to have.
  if (!settingsOf(env).allowedBindings.has(binding)) {
    throw new TransportMissing(
      `pool ${candidate.pool.name}: transport binding ${binding} is not in ALLOWED_BINDINGS`,
    );
  }
  const target = (env as Record<string, unknown>)[binding] as Partial<Fetcher> | undefined;
  if (typeof target?.fetch !== "function") {
    throw new TransportMissing(
      `pool ${candidate.pool.name}: transport binding ${binding} is not bound to this worker`,
    );
  }
  const bound = target as Fetcher;
  return { fetch: (url, init) => bound.fetch(url, init) };
}

/**
 * The URL of one endpoint for this request: the endpoint's origin, the client's path (or the one
 * a URLRewrite made of it) and query.
 */
export function upstreamUrl(url: URL, candidate: Candidate, path = url.pathname): string {
  return `${candidate.endpoint.origin}${path}${url.search}`;
}

/** What the exchange read of the request once, for every try. */
export interface TryFacts {
  requestId: string;
  /** The Host the client asked for. */
  host: string;
  websocket: boolean;
  forwardedFor: "append" | "replace";
}

/**
 * What to send to an endpoint, with the body of this try; `fetch(url, init)` takes it as it is,
 * without a Request object of its own. No signal unless a timeout applies.
 */
export function upstreamInit(
  request: Request,
  url: URL,
  body: BodyInit | null,
  signal: AbortSignal | undefined,
  facts: TryFacts,
): RequestInit {
  const headers = forwardHeaders(request.headers, {
    clientIp: request.headers.get("cf-connecting-ip"),
    proto: url.protocol.slice(0, -1),
    host: facts.host,
    requestId: facts.requestId,
    websocket: facts.websocket,
    forwardedFor: facts.forwardedFor,
  });
  const init: RequestInit = { method: request.method, headers, body, redirect: "manual" };
  if (signal !== undefined) init.signal = signal;
  return init;
}

/**
 * A Location or Content-Location that points at the endpoint itself, said in the client's
 * scheme and host (nginx's `proxy_redirect default`): a backend's own address never reaches the
 * client. Relative and other absolute URLs stay as they are.
 */
export function clientLocation(
  value: string,
  endpointOrigin: string,
  clientOrigin: string,
): string {
  const lower = value.toLowerCase();
  const origin = endpointOrigin.toLowerCase();
  if (!lower.startsWith(origin)) return value;
  const rest = value.slice(endpointOrigin.length);
  if (rest !== "" && !"/?#".includes(rest[0] as string)) return value; // :80801 is another port
  return `${clientOrigin}${rest === "" ? "/" : rest}`;
}

/**
 * Response headers that stay on the backend's hop. Connection and Keep-Alive are not among them:
 * the runtime drops both when it writes the response to the client (a Connection that names
 * other headers is handled below).
 */
const RESPONSE_HOP_BY_HOP: ReadonlySet<string> = new Set([
  "proxy-connection",
  "proxy-authenticate",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** `Connection: keep-alive` or `close`: it names no other header that must be dropped. */
function onlyConnectionOptions(value: string | null): boolean {
  for (const token of (value ?? "").split(",")) {
    const name = token.trim().toLowerCase();
    if (name !== "" && name !== "keep-alive" && name !== "close") return false;
  }
  return true;
}

export interface ResponseEdits {
  /** Sent as X-Request-Id unless the backend sent one (RESPONSE_REQUEST_ID). */
  requestId?: string;
  /** A Set-Cookie to add (a sticky session's). */
  setCookie?: string;
  /** Headers to set (X-Switchyard-Retry-Skipped with DEBUG_HEADERS). */
  set?: [string, string][];
  /**
   * The edits of HTTPRoute filters (ResponseHeaderModifier, CORS), applied to the backend's
   * headers before the sticky cookie and the debug headers, which no filter can remove.
   */
  filters?: (headers: Headers) => void;
}

/**
 * The backend's response for the client. It goes out as it came, without a copy, unless a header
 * must change: a hop-by-hop header to drop, a Location or Content-Location that names the
 * endpoint (rewritten to the client's origin, nginx's `proxy_redirect default`), or an edit of
 * the worker's own. One pass over the response's header names decides.
 */
export function clientResponse(
  response: Response,
  endpointOrigin: string,
  clientOrigin: string,
  edits: ResponseEdits = {},
): Response {
  // A 101 carries the WebSocket itself; it must be returned untouched.
  if (response.status === 101 || response.webSocket) return response;
  let hop = false;
  let location = false;
  let hasRequestId = false;
  for (const name of response.headers.keys()) {
    if (RESPONSE_HOP_BY_HOP.has(name)) hop = true;
    else if (name === "connection") hop ||= !onlyConnectionOptions(response.headers.get(name));
    else if (name === "location" || name === "content-location") location = true;
    else if (name === "x-request-id") hasRequestId = true;
  }
  const addRequestId = edits.requestId !== undefined && !hasRequestId;
  if (!hop && !location && !addRequestId && !edits.setCookie && !edits.set && !edits.filters)
    return response;
  const out = new Response(response.body, response);
  if (hop) dropHopByHop(out.headers);
  if (addRequestId) out.headers.set("x-request-id", edits.requestId as string);
  if (location) {
    for (const name of ["location", "content-location"]) {
      const value = out.headers.get(name);
      if (value !== null)
        out.headers.set(name, clientLocation(value, endpointOrigin, clientOrigin));
    }
  }
  // Filters edit what the backend sent; the sticky cookie and debug headers are the worker's own.
  edits.filters?.(out.headers);
  if (edits.setCookie) out.headers.append("set-cookie", edits.setCookie);
  for (const [name, value] of edits.set ?? []) out.headers.set(name, value);
  return out;
}
