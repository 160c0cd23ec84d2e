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
  /**
   * The host and port as the request's URL carries them, before `URL` normalizes anything: the
   * Host header the client sent, which is what the runtime builds `request.url` from.
   */
  readonly rawHost: string;
}

/**
 * A request URL already in the form `URL` gives it, so that its parts can be read by position:
 * http(s), a lower-case name for a host (no IP literal: `URL` rewrites those), a port that is
 * not the scheme's default and has no leading zero, and a path and query of characters `URL`
 * keeps as they are. The runtime's `request.url` is not normalized (`/a/../b`, `Host:
 * EXAMPLE.com:80` come as sent), so everything else goes through `URL`.
 */
const CANONICAL_URL =
  /^(https?:)\/\/([a-z0-9.-]+)(?::([1-9][0-9]{0,4}))?(\/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*)(\?[A-Za-z0-9\-._~!$&()*+,;=:@/?%]*)?$/;
/** A path `URL` would rewrite: a dot segment, plain or percent-encoded, may be in it. */
const DOT_SEGMENT = /\/\.|%2e/i;
/** A host whose last label is a number: `URL` reads it as an IPv4 address and rewrites it. */
const NUMERIC_LAST_LABEL = /(^|\.)(0x[0-9a-f]*|[0-9]+)\.?$/;

/**
 * The parts of a request's URL: the same values as `new URL(href)`. A URL in the form `URL`
 * gives it (nearly every request) is read by position, without a runtime URL object per
 * request or a call into it for each part; any other is parsed by `URL`, which normalizes it
 * (dot segments, the host's case, a default port) before anything routes on it.
 */
export function requestUrl(href: string): RequestUrl {
  const m = CANONICAL_URL.exec(href);
  const [, protocol, hostname, port, pathname, query] = m ?? [];
  if (
    m === null ||
    DOT_SEGMENT.test(pathname as string) ||
    NUMERIC_LAST_LABEL.test(hostname as string) ||
    port === (protocol === "http:" ? "80" : "443") ||
    (port !== undefined && Number(port) > 65_535)
  ) {
    const url = new URL(href);
    const authority = href.indexOf("//") + 2;
    const end = href.slice(authority).search(/[/?#]/);
    return {
      href: url.href,
      protocol: url.protocol,
      host: url.host,
      port: url.port,
      pathname: url.pathname,
      search: url.search,
      origin: url.origin,
      rawHost: end === -1 ? href.slice(authority) : href.slice(authority, authority + end),
    };
  }
  const host = port === undefined ? (hostname as string) : `${hostname}:${port}`;
  return {
    href,
    protocol: protocol as string,
    host,
    port: port ?? "",
    pathname: pathname as string,
    search: query === undefined || query === "?" ? "" : query,
    origin: `${protocol}//${host}`,
    rawHost: host,
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
  /** The Host header as the client sent it. */
  rawHost: string = url.rawHost,
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
