/** HTTP's own vocabulary, shared by route matches and filters. */

/** RFC 7230 token: header names and cookie names. */
export const TOKEN = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;

/** The methods a match or a CORS filter may name (Gateway API's HTTPMethod). */
export const HTTP_METHODS = [
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "DELETE",
  "CONNECT",
  "OPTIONS",
  "TRACE",
  "PATCH",
] as const;

export type HttpMethod = (typeof HTTP_METHODS)[number];
