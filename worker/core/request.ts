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
  url: URL,
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
