import { dropHopByHop, forwardHeaders } from "../core/forward-headers.ts";
import type { Candidate } from "../core/pick.ts";
import { type Env, settingsOf } from "../env.ts";

/**
 * The one place the worker talks to backends. The target URL is the endpoint's origin plus the
 * request's path and query: nothing the client sends chooses where the request goes.
 */

export interface Upstream {
  /** `fetch`, or a Workers binding's `fetch` (Workers VPC, Tunnel) for a pool with transport. */
  fetch(request: Request): Promise<Response>;
}

export class TransportMissing extends Error {}

export function upstreamFor(candidate: Candidate, env: Env): Upstream {
  const binding = candidate.pool.transportBinding;
  if (binding === undefined) return { fetch: (request) => fetch(request) };
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
  return { fetch: (request) => target.fetch!(request) };
}

function isWebSocketUpgrade(request: Request): boolean {
  return request.headers.get("upgrade")?.toLowerCase() === "websocket";
}

/** The request to send to one endpoint, with the body of this try. */
export function upstreamRequest(
  request: Request,
  url: URL,
  candidate: Candidate,
  requestId: string,
  body: BodyInit | null,
  signal?: AbortSignal,
  forwardedFor: "append" | "replace" = "append",
): Request {
  const websocket = isWebSocketUpgrade(request);
  const headers = forwardHeaders(request.headers, {
    clientIp: request.headers.get("cf-connecting-ip"),
    proto: url.protocol.slice(0, -1),
    host: request.headers.get("host") ?? url.host,
    requestId,
    websocket,
    forwardedFor,
  });
  const target = `${candidate.endpoint.origin}${url.pathname}${url.search}`;
  return new Request(target, {
    method: request.method,
    headers,
    body,
    redirect: "manual",
    signal,
  });
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

const LOCATION_HEADERS = ["location", "content-location"] as const;

/**
 * The backend's response for the client: hop-by-hop headers dropped, the request id added,
 * Location headers that name the endpoint rewritten to the client's origin.
 */
export function clientResponse(
  response: Response,
  requestId: string,
  endpointOrigin: string,
  clientOrigin: string,
): Response {
  // A 101 carries the WebSocket itself; it must be returned untouched.
  if (response.status === 101 || response.webSocket) return response;
  const out = new Response(response.body, response);
  dropHopByHop(out.headers);
  if (!out.headers.has("x-request-id")) out.headers.set("x-request-id", requestId);
  for (const name of LOCATION_HEADERS) {
    const value = out.headers.get(name);
    if (value !== null) out.headers.set(name, clientLocation(value, endpointOrigin, clientOrigin));
  }
  return out;
}
