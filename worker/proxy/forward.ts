import { dropHopByHop, forwardHeaders } from "../core/forward-headers.ts";
import type { Candidate } from "../core/pick.ts";
import type { RequestUrl } from "../core/request.ts";
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
export function upstreamUrl(url: RequestUrl, candidate: Candidate, path = url.pathname): string {
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
  /** The client's request's headers and method, each read from it once. */
  request: { headers: Headers; method: string },
  url: RequestUrl,
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

/** A URL with a scheme, or one that starts with two slashes or backslashes (scheme-relative). */
const NOT_PATH_RELATIVE = /^\s*([a-z][a-z0-9+.-]*:|[\\/]{2})/i;

/** A URL's port, the scheme's default when it names none. */
function effectivePort(url: URL): string {
  return url.port || (url.protocol === "https:" ? "443" : "80");
}

/**
 * A Location or Content-Location that points at the endpoint itself, said in the client's
 * scheme and host (nginx's `proxy_redirect default`): a backend's own address never reaches the
 * client. It is read as a browser reads it, so no spelling of the endpoint's address slips
 * through: scheme-relative (`//10.1.2.3:8080/x`), with user info (`http://u@…`), a trailing dot,
 * backslashes (`http:\\…`), either scheme. Path-relative and other hosts' URLs stay as they are.
 */
export function clientLocation(
  value: string,
  endpointOrigin: string,
  clientOrigin: string,
): string {
  if (!NOT_PATH_RELATIVE.test(value)) return value;
  let url: URL;
  try {
    url = new URL(value.trim(), endpointOrigin);
  } catch {
    return value;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return value;
  const endpoint = new URL(endpointOrigin);
  // The same address in the other scheme is the endpoint's too.
  const sameHost = url.hostname.replace(/\.$/, "") === endpoint.hostname;
  const samePort = url.port === endpoint.port || effectivePort(url) === effectivePort(endpoint);
  if (!sameHost || !samePort) return value;
  return `${clientOrigin}${url.pathname}${url.search}${url.hash}`;
}

/** `Connection: keep-alive` or `close`: it names no other header that must be dropped. */
function onlyConnectionOptions(value: string | null): boolean {
  // What nearly every backend sends, answered without splitting it.
  if (value === null || value === "keep-alive" || value === "close") return true;
  for (const token of value.split(",")) {
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
 * the worker's own.
 *
 * Response headers that stay on the backend's hop and that the runtime lets through: a header
 * Connection names, Proxy-Connection, and Proxy-Authenticate on a 407 (the only status a client
 * reads it on). The runtime drops Connection, Keep-Alive, TE, Trailer and Upgrade itself when it
 * writes the response to the client, and frames the body anew (Transfer-Encoding):
 * test/node/wire.test.ts checks both over the wire.
 */
export function clientResponse(
  response: Response,
  /** The response's status, read once by the exchange. */
  status: number,
  endpointOrigin: string,
  /** The URL the client asked for: its origin is read only when a Location is rewritten. */
  clientUrl: RequestUrl,
  edits: ResponseEdits = {},
): Response {
  // A 101 carries the WebSocket itself (the runtime answers an upgrade with 101 and the socket);
  // it must be returned untouched.
  if (status === 101) return response;
  // A few lookups by name rather than a walk over every header: each Headers call crosses
  // into the runtime, and a backend sends ten headers or more.
  const headers = response.headers;
  const hop =
    !onlyConnectionOptions(headers.get("connection")) ||
    headers.has("proxy-connection") ||
    (status === 407 && headers.has("proxy-authenticate"));
  const location = headers.has("location") || headers.has("content-location");
  const addRequestId = edits.requestId !== undefined && !headers.has("x-request-id");
  if (!hop && !location && !addRequestId && !edits.setCookie && !edits.set && !edits.filters)
    return response;
  const out = new Response(response.body, response);
  if (hop) dropHopByHop(out.headers);
  if (addRequestId) out.headers.set("x-request-id", edits.requestId as string);
  if (location) {
    const clientOrigin = clientUrl.origin;
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
