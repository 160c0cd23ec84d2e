/** The parts of a request's URL the worker reads: what `URL` has under the same names. */
export interface RequestUrl {
  readonly href: string;
  /** "http:" or "https:". */
  readonly protocol: string;
  /** Host and port as in the URL: the port only when it is not the scheme's default. */
  readonly host: string;
  /** The port, "" for the scheme's default. */
  readonly port: string;
  readonly pathname: string;
  /** "?" and the query, or "" when there is none (an empty query too, as `URL` has it). */
  readonly search: string;
  readonly origin: string;
}

/**
 * The parts of a request's URL, read from the runtime's serialization of it (`request.url`,
 * which the runtime has already parsed and normalized) by position: the same values as
 * `new URL(href)` for such a URL, without a URL object of the runtime's per request, or a call
 * into it for each part.
 */
export function requestUrl(href: string): RequestUrl {
  const colon = href.indexOf(":");
  const protocol = href.slice(0, colon + 1);
  const hostStart = colon + 3; // after "://"
  let pathStart = hostStart;
  while (pathStart < href.length && !"/?#".includes(href[pathStart] as string)) pathStart++;
  const host = href.slice(hostStart, pathStart);
  const bracket = host.lastIndexOf("]");
  const portColon = host.indexOf(":", bracket + 1);
  const hash = href.indexOf("#", pathStart);
  const end = hash === -1 ? href.length : hash;
  const query = href.indexOf("?", pathStart);
  const pathEnd = query === -1 || query > end ? end : query;
  const search = pathEnd === end || pathEnd + 1 === end ? "" : href.slice(pathEnd, end);
  return {
    href,
    protocol,
    host,
    port: portColon === -1 ? "" : host.slice(portColon + 1),
    pathname: pathStart === pathEnd ? "/" : href.slice(pathStart, pathEnd),
    search,
    origin: `${protocol}//${host}`,
  };
}

/** What route matching reads of a request. Adapters build it from a `Request`. */
export interface RequestView {
  /** Host without port, lower case, no trailing dot. */
  readonly host: string;
  /** URL path as the client sent it (percent-encoding kept), always starting with "/". */
  readonly path: string;
  /** Upper-case method. */
  readonly method: string;
  /** A header's value by lower-case name; repeated headers joined with ", " as fetch does. */
  header(name: string): string | null;
  /** First value of a query parameter by exact name. */
  query(name: string): string | null;
}

/** The host of a `Host` header or URL host, ready for matching: no port, lower case. */
export function normalizeHost(host: string): string {
  let h = host;
  if (h.startsWith("[")) {
    const end = h.indexOf("]");
    h = end === -1 ? h : h.slice(0, end + 1);
  } else {
    const colon = h.indexOf(":");
    if (colon !== -1) h = h.slice(0, colon);
  }
  if (h.endsWith(".")) h = h.slice(0, -1);
  return h.toLowerCase();
}

/** A RequestView over a fetch Request; query parameters are parsed only if a rule asks. */
export function viewOfRequest(
  request: Request,
  url: RequestUrl,
  /** The Host header as the client sent it, when the caller has read it already. */
  rawHost: string = request.headers.get("host") ?? url.host,
): RequestView {
  let query: URLSearchParams | undefined;
  return {
    host: normalizeHost(rawHost),
    path: url.pathname,
    method: request.method,
    header: (name) => request.headers.get(name),
    query: (name) => {
      query ??= new URLSearchParams(url.search);
      return query.get(name);
    },
  };
}

/** `name:value` as the CLI and the admin API take a header for `explain`; undefined if not. */
export function parseHeaderArgument(text: string): [name: string, value: string] | undefined {
  const colon = text.indexOf(":");
  if (colon <= 0) return undefined;
  return [text.slice(0, colon).trim(), text.slice(colon + 1).trim()];
}

/** A RequestView over plain data, for `explain` (CLI and admin API), tests and benchmarks. */
export function requestView(init: {
  host: string;
  path: string;
  method?: string;
  headers?: Record<string, string>;
  query?: Record<string, string>;
}): RequestView {
  const headers = new Map(
    Object.entries(init.headers ?? {}).map(([name, value]) => [name.toLowerCase(), value]),
  );
  const query = new Map(Object.entries(init.query ?? {}));
  return {
    host: normalizeHost(init.host),
    path: init.path,
    method: (init.method ?? "GET").toUpperCase(),
    header: (name) => headers.get(name) ?? null,
    query: (name) => query.get(name) ?? null,
  };
}

/**
 * Values a header condition is compared against. The runtime joins a repeated header with
 * ", ", so the first value is the text before the first ", "; a value that itself contains
 * ", " is compared whole as well.
 */
export function headerCandidates(joined: string): readonly string[] {
  const comma = joined.indexOf(", ");
  return comma === -1 ? [joined] : [joined, joined.slice(0, comma)];
}
