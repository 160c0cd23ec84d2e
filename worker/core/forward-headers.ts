/**
 * The header policy of a proxied request (RFC 9110 §7.6.1): hop-by-hop headers, and any header
 * the Connection header names, stay on this hop; X-Forwarded-* tell the backend who asked.
 */

const HOP_BY_HOP = [
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
] as const;

const REQUEST_ID = /^[\x21-\x7e]{1,200}$/;
/** RFC 9110 token: what a header name may be. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;

/** Deletes hop-by-hop headers in place; `keepUpgrade` keeps `Upgrade` for a WebSocket. */
export function dropHopByHop(headers: Headers, keepUpgrade = false): void {
  const named = headers.get("connection");
  if (named) {
    for (const token of named.split(",")) {
      const name = token.trim().toLowerCase();
      // A token that is no header name (`Connection: (`) names nothing to drop; passing it to
      // Headers#delete would throw and fail the request.
      if (HEADER_NAME.test(name) && !(keepUpgrade && name === "upgrade")) headers.delete(name);
    }
  }
  for (const name of HOP_BY_HOP) if (!(keepUpgrade && name === "upgrade")) headers.delete(name);
}

export interface ForwardFacts {
  /** The client's address as the platform reports it (CF-Connecting-IP), if known. */
  clientIp: string | null;
  /** "http" or "https": the scheme the client used. */
  proto: string;
  /** The Host the client asked for, port included. */
  host: string;
  /** The request's id, decided once with requestIdOf: the client's, or a minted one. */
  requestId: string;
  websocket: boolean;
  /**
   * X-Forwarded-For: "append" the client's address to what the client sent (default; trust the
   * list only as far as the proxies you run), or "replace" it with the address alone, so that a
   * backend reading the first entry cannot be told a forged one; "replace" also drops the
   * client's Forwarded and X-Real-IP.
   */
  forwardedFor?: "append" | "replace";
}

/** The client's X-Request-Id when it is a sane token, else a minted one. */
export function requestIdOf(incoming: string | null, mint: () => string): string {
  return incoming !== null && REQUEST_ID.test(incoming) ? incoming : mint();
}

/**
 * Request headers that must not go upstream and that the runtime would send: the ones it drops
 * itself when it writes a subrequest (Connection, Keep-Alive, TE, Trailer, Transfer-Encoding,
 * Upgrade but a WebSocket's; it frames the body on its own) are not looked for, nor is
 * CF-Worker, which the platform sets on every subrequest itself. test/worker/proxy.test.ts
 * checks what a backend receives.
 */
const NOT_FORWARDED = ["proxy-connection", "proxy-authorization"] as const;

/**
 * Headers for the upstream request. Each Headers call crosses into the runtime, so the headers
 * to drop are looked up by name (a handful of calls) rather than found by walking every header
 * the client sent (a browser sends a dozen or more); only those present are deleted.
 */
export function forwardHeaders(incoming: Headers, facts: ForwardFacts): Headers {
  const headers = new Headers(incoming);
  // Connection names more headers to keep on this hop.
  const connection = incoming.get("connection");
  if (connection !== null) {
    for (const token of connection.split(",")) {
      const name = token.trim().toLowerCase();
      // A token that is no header name (`Connection: (`) names nothing to drop; passing it to
      // Headers#delete would throw and fail the request.
      if (
        name !== "keep-alive" &&
        name !== "close" &&
        HEADER_NAME.test(name) &&
        !(facts.websocket && name === "upgrade")
      )
        headers.delete(name);
    }
  }
  for (const name of NOT_FORWARDED) if (incoming.has(name)) headers.delete(name);
  if (facts.clientIp !== null) headers.delete("cf-connecting-ip");
  if (facts.websocket) headers.set("upgrade", "websocket");
  if (facts.clientIp) {
    const forwardedFor = facts.forwardedFor === "replace" ? null : incoming.get("x-forwarded-for");
    const last = forwardedFor?.split(",").at(-1)?.trim();
    if (!forwardedFor) headers.set("x-forwarded-for", facts.clientIp);
    else if (last !== facts.clientIp)
      headers.set("x-forwarded-for", `${forwardedFor}, ${facts.clientIp}`);
  } else if (facts.forwardedFor === "replace") headers.delete("x-forwarded-for");
  // The other headers that name a client's address (RFC 7239 Forwarded, nginx's X-Real-IP):
  // with "replace", none that the client wrote reaches the backend either.
  if (facts.forwardedFor === "replace") {
    headers.delete("forwarded");
    headers.delete("x-real-ip");
  }
  headers.set("x-forwarded-proto", facts.proto);
  headers.set("x-forwarded-host", facts.host);
  headers.set("x-request-id", facts.requestId);
  return headers;
}
