import type {
  CorsFilter,
  HeaderFilter,
  HttpRouteFilter,
  HttpRouteRule,
  PathModifier,
  RequestRedirect,
} from "../../contract/index.ts";

/**
 * HTTPRoute filters compiled once per snapshot (docs/filters.md). Everything here is pure: a
 * filter becomes data and small functions that the data path applies without reading the
 * filter document again. A rule or backendRef without filters compiles to `undefined`, so the
 * data path pays one property check for it.
 */

export interface HeaderEdits {
  set: readonly (readonly [string, string])[];
  add: readonly (readonly [string, string])[];
  remove: readonly string[];
}

/** A redirect's settings; the Location is built per request by redirectLocation. */
export interface CompiledRedirect {
  scheme: "http" | "https" | undefined;
  hostname: string | undefined;
  port: number | undefined;
  path: ((path: string) => string) | undefined;
  status: number;
}

interface AllowedOrigin {
  scheme: string;
  /** Lower case; for a wildcard, the suffix after `*` (".bar.com"), or "" for any host. */
  host: string;
  wildcard: boolean;
  port: number;
}

export interface CompiledCors {
  /** `allowOrigins: ["*"]`. */
  anyOrigin: boolean;
  origins: readonly AllowedOrigin[];
  credentials: boolean;
  /** "*", the methods joined, or undefined when allowMethods is empty. */
  methods: string | undefined;
  /** "*", the header names joined, or undefined when allowHeaders is empty. */
  headers: string | undefined;
  /** Access-Control-Expose-Headers, or undefined. */
  expose: string | undefined;
  maxAge: string;
}

export interface CompiledMirror<P> {
  poolName: string;
  pool: P;
  /** Mirrored when `random() * denominator < numerator`. */
  numerator: number;
  denominator: number;
}

/** A DirectResponse: the status and body the rule answers with. */
export interface CompiledDirect {
  status: number;
  /** Null when the filter has no body. */
  body: string | null;
}

export interface CompiledFilters<P = unknown> {
  requestHeaders: HeaderEdits | undefined;
  responseHeaders: HeaderEdits | undefined;
  redirect: CompiledRedirect | undefined;
  direct: CompiledDirect | undefined;
  /** URLRewrite's path: the path the backend sees. */
  rewritePath: ((path: string) => string) | undefined;
  mirrors: readonly CompiledMirror<P>[];
  cors: CompiledCors | undefined;
}

/** The rule's one PathPrefix, which ReplacePrefixMatch replaces; undefined otherwise. */
export function matchedPrefix(rule: HttpRouteRule): string | undefined {
  const only = rule.matches.length === 1 ? rule.matches[0] : undefined;
  return only?.path.type === "PathPrefix" ? only.path.value : undefined;
}

function headerEdits(filter: HeaderFilter): HeaderEdits {
  return {
    set: (filter.set ?? []).map((h) => [h.name, h.value] as const),
    add: (filter.add ?? []).map((h) => [h.name, h.value] as const),
    remove: filter.remove ?? [],
  };
}

/** Gateway API's set, add and remove, on headers in place (names are case-insensitive). */
export function applyHeaderEdits(headers: Headers, edits: HeaderEdits): void {
  for (const name of edits.remove) headers.delete(name);
  for (const [name, value] of edits.set) headers.set(name, value);
  for (const [name, value] of edits.add) headers.append(name, value);
}

/**
 * ReplacePrefixMatch: `prefix`, the rule's PathPrefix, is replaced by `replacement` on segment
 * boundaries; trailing slashes of both are ignored, and an empty result is "/" (the table of
 * Gateway API's HTTPPathModifier). A path the prefix does not start is returned as it is.
 */
export function replacePrefix(path: string, prefix: string, replacement: string): string {
  const bare = prefix.endsWith("/") ? prefix.slice(0, -1) : prefix;
  if (!path.startsWith(bare)) return path;
  const rest = path.slice(bare.length);
  if (rest !== "" && !rest.startsWith("/")) return path;
  const head = replacement.endsWith("/") ? replacement.slice(0, -1) : replacement;
  const out = head + rest;
  return out === "" ? "/" : out;
}

function pathFunction(
  modifier: PathModifier | undefined,
  matchedPrefix: string | undefined,
): ((path: string) => string) | undefined {
  if (modifier === undefined) return undefined;
  if (modifier.type === "ReplaceFullPath") {
    const full = modifier.replaceFullPath as string;
    return () => full;
  }
  const replacement = modifier.replacePrefixMatch as string;
  const prefix = matchedPrefix ?? "/";
  return (path) => replacePrefix(path, prefix, replacement);
}

function compileRedirect(
  redirect: RequestRedirect,
  matchedPrefix: string | undefined,
): CompiledRedirect {
  return {
    scheme: redirect.scheme,
    hostname: redirect.hostname?.toLowerCase(),
    port: redirect.port,
    path: pathFunction(redirect.path, matchedPrefix),
    status: redirect.statusCode,
  };
}

/** What a redirect reads of the request. */
export interface RedirectRequest {
  /** "http" or "https". */
  scheme: string;
  /** Host without port. */
  host: string;
  /** The port the request came to (the listener's), 80 or 443 when the URL names none. */
  port: number;
  path: string;
  /** The query with its "?", or "". */
  search: string;
}

/** 443 for https, 80 otherwise. */
export function wellKnownPort(scheme: string): number {
  return scheme === "https" ? 443 : 80;
}

/**
 * The Location of a redirect (Gateway API HTTPRequestRedirectFilter): the request's scheme,
 * host, port and path with the filter's replacements. With a scheme and no port the scheme's
 * well-known port is used, else the port the request came to; 80 for http and 443 for https are
 * left out. The query is kept.
 */
export function redirectLocation(redirect: CompiledRedirect, request: RedirectRequest): string {
  const scheme = redirect.scheme ?? request.scheme;
  const host = redirect.hostname ?? request.host;
  const port =
    redirect.port ?? (redirect.scheme !== undefined ? wellKnownPort(scheme) : request.port);
  const portText = port === wellKnownPort(scheme) ? "" : `:${port}`;
  const path = redirect.path ? redirect.path(request.path) : request.path;
  return `${scheme}://${host}${portText}${path}${request.search}`;
}

function allowedOrigin(text: string): AllowedOrigin {
  const url = /^(https?):\/\/([^:]+)(?::(\d+))?$/.exec(text.toLowerCase()) as RegExpExecArray;
  const scheme = url[1] as string;
  const host = url[2] as string;
  const wildcard = host.startsWith("*");
  return {
    scheme,
    host: wildcard ? host.slice(1) : host,
    wildcard,
    port: url[3] === undefined ? wellKnownPort(scheme) : Number(url[3]),
  };
}

const REQUEST_ORIGIN = /^(https?):\/\/([^/:?#]+|\[[0-9a-f:.]+\])(?::(\d{1,5}))?$/;

/**
 * Whether the request's Origin is one the filter allows. `Origin: null` (a sandboxed frame, a
 * file, a data: URL) is never allowed with credentials, even by "*": reflecting it would hand a
 * credentialed response to any page that makes itself opaque.
 */
export function originAllowed(cors: CompiledCors, origin: string): boolean {
  if (cors.anyOrigin) return !(cors.credentials && origin === "null");
  const parsed = REQUEST_ORIGIN.exec(origin.toLowerCase());
  if (!parsed) return false;
  const scheme = parsed[1] as string;
  const host = parsed[2] as string;
  const port = parsed[3] === undefined ? wellKnownPort(scheme) : Number(parsed[3]);
  return cors.origins.some(
    (allowed) =>
      allowed.scheme === scheme &&
      allowed.port === port &&
      (allowed.wildcard
        ? host.endsWith(allowed.host) && host.length > allowed.host.length
        : allowed.host === host),
  );
}

function compileCors(cors: CorsFilter): CompiledCors {
  const origins = cors.allowOrigins ?? [];
  const credentials = cors.allowCredentials === true;
  const list = (items: readonly string[] | undefined) =>
    items === undefined || items.length === 0 ? undefined : items.join(", ");
  // With credentials a browser takes no "*": such an entry exposes nothing, and is left out.
  const expose = (cors.exposeHeaders ?? []).filter((h) => !(credentials && h === "*"));
  return {
    anyOrigin: origins.includes("*"),
    origins: origins.filter((o) => o !== "*").map(allowedOrigin),
    credentials,
    methods: list(cors.allowMethods),
    headers: list(cors.allowHeaders),
    expose: list(expose),
    maxAge: String(cors.maxAge),
  };
}

/** What CORS reads of a request. */
export interface CorsRequest {
  method: string;
  origin: string | null;
  requestMethod: string | null;
  requestHeaders: string | null;
}

/** A CORS preflight: OPTIONS with Origin and Access-Control-Request-Method. */
export function isPreflight(request: CorsRequest): boolean {
  return request.method === "OPTIONS" && request.origin !== null && request.requestMethod !== null;
}

/**
 * Access-Control-Allow-Origin for an allowed origin: "*" only when any origin is allowed and
 * credentials are not; otherwise the request's own origin, as browsers require with credentials.
 */
function allowOriginValue(cors: CompiledCors, origin: string): string {
  return cors.anyOrigin && !cors.credentials ? "*" : origin;
}

/**
 * The headers of the edge's answer to a preflight. An origin the filter does not allow gets
 * none of the Access-Control-* headers, so the browser refuses the actual request. A "*" of
 * allowMethods or allowHeaders is echoed as what the request asked for when credentials are
 * allowed, since browsers take no "*" then.
 */
export function preflightHeaders(cors: CompiledCors, request: CorsRequest): [string, string][] {
  const origin = request.origin as string;
  const out: [string, string][] = [["vary", "Origin"]];
  if (!originAllowed(cors, origin)) return out;
  out.push(["access-control-allow-origin", allowOriginValue(cors, origin)]);
  if (cors.credentials) out.push(["access-control-allow-credentials", "true"]);
  const methods =
    cors.methods === "*" && cors.credentials ? (request.requestMethod ?? undefined) : cors.methods;
  if (methods !== undefined) out.push(["access-control-allow-methods", methods]);
  const headers =
    cors.headers === "*" && cors.credentials ? (request.requestHeaders ?? undefined) : cors.headers;
  if (headers !== undefined) out.push(["access-control-allow-headers", headers]);
  if (cors.expose !== undefined) out.push(["access-control-expose-headers", cors.expose]);
  out.push(["access-control-max-age", cors.maxAge]);
  return out;
}

/** The CORS headers of an actual (not preflight) response to a request from `origin`. */
export function responseCorsHeaders(cors: CompiledCors, origin: string | null): [string, string][] {
  if (origin === null) return [];
  if (!originAllowed(cors, origin)) return [["vary", "Origin"]];
  const out: [string, string][] = [
    ["vary", "Origin"],
    ["access-control-allow-origin", allowOriginValue(cors, origin)],
  ];
  if (cors.credentials) out.push(["access-control-allow-credentials", "true"]);
  if (cors.expose !== undefined) out.push(["access-control-expose-headers", cors.expose]);
  return out;
}

/** Whether a request is mirrored, given a uniform random number in [0, 1). */
export function mirrored(mirror: CompiledMirror<unknown>, random: number): boolean {
  return random * mirror.denominator < mirror.numerator;
}

/**
 * Compiles a filters list. `matchedPrefix` is the rule's one PathPrefix (validation makes sure
 * there is exactly one where ReplacePrefixMatch is used); `poolOf` resolves a mirror's pool.
 * Undefined when there are no filters.
 */
export function compileFilters<P>(
  filters: readonly HttpRouteFilter[] | undefined,
  matchedPrefix: string | undefined,
  poolOf: (name: string) => P,
): CompiledFilters<P> | undefined {
  if (filters === undefined || filters.length === 0) return undefined;
  const compiled: CompiledFilters<P> = {
    requestHeaders: undefined,
    responseHeaders: undefined,
    redirect: undefined,
    direct: undefined,
    rewritePath: undefined,
    mirrors: [],
    cors: undefined,
  };
  const mirrors: CompiledMirror<P>[] = [];
  for (const filter of filters) {
    if (filter.requestHeaderModifier)
      compiled.requestHeaders = headerEdits(filter.requestHeaderModifier);
    else if (filter.responseHeaderModifier)
      compiled.responseHeaders = headerEdits(filter.responseHeaderModifier);
    else if (filter.requestRedirect)
      compiled.redirect = compileRedirect(filter.requestRedirect, matchedPrefix);
    else if (filter.urlRewrite)
      compiled.rewritePath = pathFunction(filter.urlRewrite.path, matchedPrefix);
    else if (filter.cors) compiled.cors = compileCors(filter.cors);
    else if (filter.directResponse)
      compiled.direct = {
        status: filter.directResponse.statusCode,
        body: filter.directResponse.body?.string ?? null,
      };
    else if (filter.requestMirror) {
      const { backendRef, percent, fraction } = filter.requestMirror;
      mirrors.push({
        poolName: backendRef.pool,
        pool: poolOf(backendRef.pool),
        numerator: fraction ? fraction.numerator : (percent ?? 100),
        denominator: fraction ? fraction.denominator : 100,
      });
    }
  }
  compiled.mirrors = mirrors;
  return compiled;
}

/** One line per filter, for `explain`: what the filter does to this request. */
export function describeFilters(
  filters: readonly HttpRouteFilter[] | undefined,
  matchedPrefix: string | undefined,
  request: RedirectRequest,
): string[] {
  const headers = (edits: HeaderFilter) =>
    [
      ...(edits.set ?? []).map((h) => `set ${h.name}: ${h.value}`),
      ...(edits.add ?? []).map((h) => `add ${h.name}: ${h.value}`),
      ...(edits.remove ?? []).map((name) => `remove ${name}`),
    ].join("; ");
  return (filters ?? []).map((filter) => {
    if (filter.requestHeaderModifier)
      return `RequestHeaderModifier: ${headers(filter.requestHeaderModifier)}`;
    if (filter.responseHeaderModifier)
      return `ResponseHeaderModifier: ${headers(filter.responseHeaderModifier)}`;
    if (filter.requestRedirect) {
      const redirect = compileRedirect(filter.requestRedirect, matchedPrefix);
      return `RequestRedirect: ${redirect.status} to ${redirectLocation(redirect, request)}`;
    }
    if (filter.urlRewrite) {
      const rewrite = pathFunction(filter.urlRewrite.path, matchedPrefix);
      return `URLRewrite: path ${request.path} → ${rewrite ? rewrite(request.path) : request.path}`;
    }
    if (filter.requestMirror) {
      const { backendRef, percent, fraction } = filter.requestMirror;
      const share = fraction
        ? `${fraction.numerator}/${fraction.denominator}`
        : `${percent ?? 100}%`;
      return `RequestMirror: ${share} of requests to pool ${backendRef.pool}`;
    }
    if (filter.directResponse) {
      const { statusCode, body } = filter.directResponse;
      const bytes = body === undefined ? 0 : new TextEncoder().encode(body.string).length;
      return `DirectResponse: ${statusCode}, ${bytes === 0 ? "no body" : `a body of ${bytes} bytes`}; no backend`;
    }
    const cors = filter.cors as CorsFilter;
    return `CORS: origins ${(cors.allowOrigins ?? []).join(", ") || "(none)"}${cors.allowCredentials ? ", with credentials" : ""}; preflights answered at the edge`;
  });
}
