/**
 * A request path as backends read it, decided before any rule is matched, and the path that is
 * forwarded (Envoy's `normalize_path`, `merge_slashes` and `path_with_escaped_slashes_action`):
 * otherwise `/%61dmin`, `//admin` or `/x/..%2fadmin` pass a rule that guards `/admin` and reach
 * a backend that reads them as `/admin` (nginx, WSGI, most frameworks do). Pure.
 *
 * 1. Percent-encoded unreserved characters (RFC 3986 §2.3: letters, digits, `-._~`) are decoded;
 *    other escapes keep their meaning and get upper-case hex (§6.2.2.1).
 * 2. `%2F` and `%5C` (an escaped `/` or `\`) are refused (`reject`, the default), decoded to `/`
 *    (`decode`), or kept as they are (`keep`: only for backends that do not decode them).
 * 3. Runs of slashes become one.
 * 4. Dot segments are resolved (RFC 3986 §5.2.4), also those that were escaped.
 *
 * `;` path parameters stay part of their segment, for matching and forwarding alike
 * (docs/security.md).
 */

import type { RequestUrl } from "./request.ts";

export type EscapedSlashes = "reject" | "decode" | "keep";

export type NormalizedPath = { path: string } | { reject: string };

/** What a path needs looked at: an escape, a double slash, or a dot segment. */
const SUSPECT = /%|\/\/|\/\.(\.)?(\/|$)/;
const ESCAPE = /%([0-9A-Fa-f]{2})/g;
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/** Whether the path may change: most paths are left as they are without further work. */
export function needsNormalizing(path: string): boolean {
  return SUSPECT.test(path);
}

export function normalizePath(path: string, escapedSlashes: EscapedSlashes): NormalizedPath {
  if (!needsNormalizing(path)) return { path };
  let slash = false;
  const decoded = path.replace(ESCAPE, (_, hex: string) => {
    const char = String.fromCharCode(Number.parseInt(hex, 16));
    if (UNRESERVED.test(char)) return char;
    if (char === "/" || char === "\\") {
      slash = true;
      if (escapedSlashes === "decode") return "/";
    }
    return `%${hex.toUpperCase()}`;
  });
  if (slash && escapedSlashes === "reject")
    return { reject: "an escaped slash (%2F or %5C) in the path" };
  return { path: removeDotSegments(decoded.replace(/\/{2,}/g, "/")) };
}

/** RFC 3986 §5.2.4 over a path that starts with "/" and has no runs of slashes. */
function removeDotSegments(path: string): string {
  if (!/\/\.(\.)?(\/|$)/.test(path)) return path;
  const out: string[] = [];
  const segments = path.split("/").slice(1);
  segments.forEach((segment, i) => {
    const last = i === segments.length - 1;
    if (segment === "..") out.pop();
    if (segment === "." || segment === "..") {
      if (last) out.push(""); // "/a/.." is "/", with its trailing slash
      return;
    }
    out.push(segment);
  });
  return `/${out.join("/")}`;
}

/**
 * The request's URL with its path normalized: the same object when nothing changes (nearly
 * every request), a reason when the path is refused.
 */
export function normalizedUrl(
  url: RequestUrl,
  escapedSlashes: EscapedSlashes,
): RequestUrl | string {
  if (!needsNormalizing(url.pathname)) return url;
  const result = normalizePath(url.pathname, escapedSlashes);
  if ("reject" in result) return result.reject;
  if (result.path === url.pathname) return url;
  return { ...url, pathname: result.path, href: `${url.origin}${result.path}${url.search}` };
}
