import {
  applyHeaderEdits,
  type CompiledCors,
  type CompiledDirect,
  type CompiledRedirect,
  type CorsRequest,
  preflightHeaders,
  redirectLocation,
  responseCorsHeaders,
  wellKnownPort,
} from "../core/filters.ts";
import { normalizeHost, type RequestUrl } from "../core/request.ts";
import type { RuleFilters } from "../core/snapshot.ts";

/**
 * The answers filters make at the edge (a redirect, a direct response, a CORS preflight) and the
 * edits they make to a response, on fetch's Request and Headers. The decisions are in core/filters.ts.
 */

export function corsRequestOf(request: Request): CorsRequest {
  return {
    method: request.method,
    origin: request.headers.get("origin"),
    requestMethod: request.headers.get("access-control-request-method"),
    requestHeaders: request.headers.get("access-control-request-headers"),
  };
}

/** A RequestRedirect's answer: its status and Location, no body, no backend. */
export function redirectResponse(
  redirect: CompiledRedirect,
  url: RequestUrl,
  rawHost: string,
): Response {
  const scheme = url.protocol.slice(0, -1);
  const location = redirectLocation(redirect, {
    scheme,
    host: normalizeHost(rawHost),
    port: url.port === "" ? wellKnownPort(scheme) : Number(url.port),
    path: url.pathname,
    search: url.search,
  });
  return new Response(null, { status: redirect.status, headers: { location } });
}

/** A DirectResponse's answer: its status and body (text/plain unless a filter sets another type). */
export function directResponse(direct: CompiledDirect): Response {
  return new Response(direct.body, { status: direct.status });
}

/** The edge's answer to a CORS preflight: 204, with the Access-Control-* headers it allows. */
export function preflightResponse(cors: CompiledCors, request: CorsRequest): Response {
  return new Response(null, { status: 204, headers: preflightHeaders(cors, request) });
}

/** Adds a token to Vary unless it is there already. */
function addVary(headers: Headers, token: string): void {
  const vary = headers.get("vary");
  if (vary === null) headers.set("vary", token);
  else if (!vary.split(",").some((t) => t.trim().toLowerCase() === token.toLowerCase()))
    headers.set("vary", `${vary}, ${token}`);
}

/**
 * The response edits of a rule's and a backendRef's filters: ResponseHeaderModifier (the rule's,
 * then the ref's) and the CORS headers of the ref's CORS filter, else the rule's. Undefined when
 * there is nothing to change, so that the response is not copied.
 */
export function responseEdits(
  rule: RuleFilters | undefined,
  ref: RuleFilters | undefined,
  origin: string | null,
): ((headers: Headers) => void) | undefined {
  const own = rule?.responseHeaders;
  const refs = ref?.responseHeaders;
  const cors = ref?.cors ?? rule?.cors;
  const corsHeaders = cors && origin !== null ? responseCorsHeaders(cors, origin) : undefined;
  if (own === undefined && refs === undefined && corsHeaders === undefined) return undefined;
  return (headers) => {
    if (own) applyHeaderEdits(headers, own);
    if (refs) applyHeaderEdits(headers, refs);
    if (corsHeaders) setCorsHeaders(headers, corsHeaders);
  };
}

function setCorsHeaders(headers: Headers, corsHeaders: [string, string][]): void {
  for (const [name, value] of corsHeaders) {
    if (name === "vary") addVary(headers, value);
    else headers.set(name, value);
  }
}

/**
 * An answer the worker makes itself for a rule (a 5xx when no backend answered), with the CORS
 * headers of the picked backendRef's CORS filter, else the rule's: a browser hands a script the
 * status of a cross-origin answer only with them, and reports a CORS error otherwise. No other
 * filter edits it: ResponseHeaderModifier is for what a backend sends.
 */
export function withCors(
  response: Response,
  rule: RuleFilters | undefined,
  ref: RuleFilters | undefined,
  /** The client's request headers, read only when there is a CORS filter. */
  requestHeaders: Headers,
): Response {
  const cors = ref?.cors ?? rule?.cors;
  if (cors === undefined) return response;
  const origin = requestHeaders.get("origin");
  if (origin !== null) setCorsHeaders(response.headers, responseCorsHeaders(cors, origin));
  return response;
}
