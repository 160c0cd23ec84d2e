import { compileRegex, type HttpRoute, type HttpRouteMatch } from "../../contract/index.ts";
import type { RuleMatch } from "./match.ts";
import { headerCandidates, type RequestView } from "./request.ts";

/**
 * The slow, obviously-correct statement of the matching rules (README, "How a request is routed") that the compiled matcher is tested
 * against: every (route, rule, match) is checked in full, and the winners are sorted by the
 * precedence tuple written out literally. Also used by `explain` to say why the others lost.
 */

/** Lower is more specific. `undefined`: the route does not take this host. */
export function hostnameRank(hostnames: readonly string[], host: string): number[] | undefined {
  if (hostnames.length === 0) return [2];
  let best: number[] | undefined;
  for (const raw of hostnames) {
    const hostname = raw.toLowerCase();
    let rank: number[] | undefined;
    if (!hostname.startsWith("*.")) rank = hostname === host ? [0] : undefined;
    else {
      const suffix = hostname.slice(1);
      const label = host.slice(0, host.length - suffix.length);
      rank =
        host.endsWith(suffix) && label.length > 0 && !label.startsWith(".")
          ? [1, -suffix.length]
          : undefined;
    }
    if (rank && (!best || compareTuples(rank, best) < 0)) best = rank;
  }
  return best;
}

function pathMatches(path: HttpRouteMatch["path"], requestPath: string): boolean {
  switch (path.type) {
    case "Exact":
      return requestPath === path.value;
    case "PathPrefix": {
      const prefix = path.value.endsWith("/") ? path.value.slice(0, -1) : path.value;
      return requestPath === prefix || requestPath.startsWith(`${prefix}/`);
    }
    case "RegularExpression":
      return compileRegex(path.value).test(requestPath);
  }
}

function valueHolds(match: { type: string; value: string }, value: string): boolean {
  return match.type === "RegularExpression"
    ? compileRegex(match.value).test(value)
    : match.value === value;
}

/** Why one match does not take the request, or `undefined` when it does. */
export function mismatchReason(match: HttpRouteMatch, request: RequestView): string | undefined {
  if (!pathMatches(match.path, request.path))
    return `path is not ${match.path.type} ${match.path.value}`;
  if (match.method !== undefined && match.method !== request.method)
    return `method is not ${match.method}`;
  for (const header of match.headers) {
    const joined = request.header(header.name.toLowerCase());
    if (joined === null) return `header ${header.name} is absent`;
    if (!headerCandidates(joined).some((value) => valueHolds(header, value))) {
      return `header ${header.name} does not match`;
    }
  }
  for (const param of match.queryParams) {
    const value = request.query(param.name);
    if (value === null) return `query parameter ${param.name} is absent`;
    if (!valueHolds(param, value)) return `query parameter ${param.name} does not match`;
  }
  return undefined;
}

function compareTuples(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** The precedence of a match that holds, as a tuple: lower wins. */
export function precedence(hostRank: number[], match: HttpRouteMatch, order: number): number[] {
  const path = match.path;
  const pathRank =
    path.type === "Exact"
      ? [0, 0]
      : path.type === "PathPrefix"
        ? [1, -(path.value.endsWith("/") ? path.value.length - 1 : path.value.length)]
        : [2, order]; // regular expressions: the one listed first wins
  return [
    hostRank[0] ?? 0,
    hostRank[1] ?? 0,
    ...pathRank,
    match.method === undefined ? 1 : 0,
    -match.headers.length,
    -match.queryParams.length,
    order,
  ];
}

export interface Contender extends RuleMatch {
  rank: number[];
}

/** Every match that takes the request, best first. */
export function contenders(routes: readonly HttpRoute[], request: RequestView): Contender[] {
  const out: Contender[] = [];
  let order = 0;
  routes.forEach((route, routeIndex) => {
    const hostRank = hostnameRank(route.hostnames, request.host);
    route.rules.forEach((rule, ruleIndex) => {
      rule.matches.forEach((match, matchIndex) => {
        const here = order++;
        if (hostRank && mismatchReason(match, request) === undefined) {
          out.push({ routeIndex, ruleIndex, matchIndex, rank: precedence(hostRank, match, here) });
        }
      });
    });
  });
  return out.sort((a, b) => compareTuples(a.rank, b.rank));
}

export function referenceMatch(
  routes: readonly HttpRoute[],
  request: RequestView,
): RuleMatch | undefined {
  const best = contenders(routes, request)[0];
  return (
    best && { routeIndex: best.routeIndex, ruleIndex: best.ruleIndex, matchIndex: best.matchIndex }
  );
}
