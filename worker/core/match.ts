import { type CompiledRegex, compileRegex, type HttpRoute } from "../../contract/index.ts";
import { headerCandidates, type RequestView } from "./request.ts";
import { type RouteSource, routeArray } from "./route-table.ts";

/**
 * HTTPRoute matching, compiled per hostname when a request first names it (README, "How a
 * request is routed").
 *
 * Hosts are indexed by exact name and by wildcard suffix, so a lookup walks the request host's
 * labels once; within a host, Exact paths and PathPrefixes are indexed by path, so a lookup walks
 * the request path's segments once, longest first. Each bucket is sorted by the remaining
 * precedence (method, header count, query count, document order); the first entry whose
 * conditions hold wins. Cost per request: O(labels + segments + entries sharing a path).
 */

/** Which rule a request matched: indices into the routes document. */
export interface RuleMatch {
  routeIndex: number;
  ruleIndex: number;
  matchIndex: number;
}

interface ValueCondition {
  name: string;
  exact?: string;
  pattern?: CompiledRegex;
}

interface Entry extends RuleMatch {
  method: string | undefined;
  headers: readonly ValueCondition[];
  query: readonly ValueCondition[];
}

/** The entries of one hostname; parts are created only when used, as most hosts need one. */
interface HostGroup {
  exact?: Map<string, Entry[]>;
  prefix?: Map<string, Entry[]>;
  /** The longest PathPrefix key: no longer part of a path can match one. */
  prefixMax?: number;
  regex?: { pattern: CompiledRegex; entry: Entry }[];
}

const NO_CONDITIONS: readonly ValueCondition[] = Object.freeze([]);

export interface Matcher {
  match(request: RequestView): RuleMatch | undefined;
}

/** Whole-value matching on RE2 (contract/regex.ts): linear in the input, whatever the pattern. */
function fullMatch(source: string): CompiledRegex {
  return compileRegex(source);
}

function valueCondition(match: { type: string; name: string; value: string }, fold: boolean) {
  const name = fold ? match.name.toLowerCase() : match.name;
  return match.type === "RegularExpression"
    ? { name, pattern: fullMatch(match.value) }
    : { name, exact: match.value };
}

function holds(condition: ValueCondition, value: string | null): boolean {
  if (value === null) return false;
  return condition.pattern ? condition.pattern.test(value) : condition.exact === value;
}

function conditionsHold(entry: Entry, request: RequestView): boolean {
  if (entry.method !== undefined && entry.method !== request.method) return false;
  for (const condition of entry.headers) {
    const joined = request.header(condition.name);
    if (joined === null || !headerCandidates(joined).some((value) => holds(condition, value))) {
      return false;
    }
  }
  for (const condition of entry.query) {
    if (!holds(condition, request.query(condition.name))) return false;
  }
  return true;
}

/**
 * Method match first, then more headers, then more query params, then document order (of the
 * route, the rule, the match).
 */
function byPrecedence(a: Entry, b: Entry): number {
  return (
    Number(b.method !== undefined) - Number(a.method !== undefined) ||
    b.headers.length - a.headers.length ||
    b.query.length - a.query.length ||
    a.routeIndex - b.routeIndex ||
    a.ruleIndex - b.ruleIndex ||
    a.matchIndex - b.matchIndex
  );
}

/** A PathPrefix is indexed without its trailing slash; "/" becomes "". */
function prefixKey(value: string): string {
  return value.endsWith("/") ? value.slice(0, -1) : value;
}

function firstHolding(entries: Entry[] | undefined, request: RequestView): Entry | undefined {
  if (entries === undefined) return undefined;
  for (const entry of entries) if (conditionsHold(entry, request)) return entry;
  return undefined;
}

function matchGroup(group: HostGroup, request: RequestView): Entry | undefined {
  const path = request.path;
  if (group.exact) {
    const exact = firstHolding(group.exact.get(path), request);
    if (exact) return exact;
  }
  const prefixes = group.prefix;
  if (prefixes) {
    // The path itself, then each prefix ending before a "/", longest first; "" is the root.
    // Only prefixes as long as the longest indexed one are looked up: a path of thousands of
    // short segments costs as many lookups as the configuration's longest prefix has, not
    // thousands of hashes of ever longer strings.
    const max = group.prefixMax ?? 0;
    let found = path.length <= max ? firstHolding(prefixes.get(path), request) : undefined;
    for (let slash = path.lastIndexOf("/", max); !found && slash >= 0; ) {
      found = firstHolding(prefixes.get(path.slice(0, slash)), request);
      slash = slash === 0 ? -1 : path.lastIndexOf("/", slash - 1);
    }
    if (found) return found;
  }
  if (group.regex) {
    for (const { pattern, entry } of group.regex) {
      if (pattern.test(path) && conditionsHold(entry, request)) return entry;
    }
  }
  return undefined;
}

function push(map: Map<string, Entry[]>, key: string, entry: Entry): Map<string, Entry[]> {
  const list = map.get(key);
  if (list) list.push(entry);
  else map.set(key, [entry]);
  return map;
}

/** The entries of the routes that share one hostname (or take any host), indexed by path. */
function compileGroup(source: RouteSource, routeIndices: readonly number[]): HostGroup {
  const group: HostGroup = {};
  for (const routeIndex of routeIndices) {
    const route = source.route(routeIndex);
    if (route === undefined) continue;
    route.rules.forEach((rule, ruleIndex) => {
      rule.matches.forEach((match, matchIndex) => {
        const entry: Entry = {
          routeIndex,
          ruleIndex,
          matchIndex,
          method: match.method,
          headers: match.headers.length
            ? match.headers.map((h) => valueCondition(h, true))
            : NO_CONDITIONS,
          query: match.queryParams.length
            ? match.queryParams.map((q) => valueCondition(q, false))
            : NO_CONDITIONS,
        };
        const { type, value } = match.path;
        if (type === "Exact") group.exact = push(group.exact ?? new Map(), value, entry);
        else if (type === "PathPrefix") {
          const key = prefixKey(value);
          group.prefix = push(group.prefix ?? new Map(), key, entry);
          group.prefixMax = Math.max(group.prefixMax ?? 0, key.length);
        } else {
          group.regex ??= [];
          group.regex.push({ pattern: fullMatch(value), entry });
        }
      });
    });
  }
  for (const list of group.exact?.values() ?? []) list.sort(byPrecedence);
  for (const list of group.prefix?.values() ?? []) list.sort(byPrecedence);
  return group;
}

/**
 * The matcher of a routes document. A hostname's entries are compiled the first time a request
 * names it, and kept for the matcher's life: an isolate holds what its traffic uses, and a
 * document of 10,000 routes costs nothing at load but its host index.
 */
export function compileMatcher(routes: RouteSource | readonly HttpRoute[]): Matcher {
  const source = isRouteArray(routes) ? routeArray(routes) : routes;
  const { exact, wildcard, any } = source.hosts;
  const groups = new Map<readonly number[], HostGroup>();
  const groupOf = (routeIndices: readonly number[]): HostGroup => {
    let group = groups.get(routeIndices);
    if (group === undefined) {
      group = compileGroup(source, routeIndices);
      groups.set(routeIndices, group);
    }
    return group;
  };

  return {
    match(request) {
      const host = request.host;
      const exactRoutes = exact.get(host);
      let found = exactRoutes && matchGroup(groupOf(exactRoutes), request);
      if (found) return found;
      if (wildcard.size > 0) {
        // Longest wildcard first: ".b.example.com", then ".example.com", then ".com".
        for (let dot = host.indexOf(".", 1); dot !== -1; dot = host.indexOf(".", dot + 1)) {
          const wildcardRoutes = wildcard.get(host.slice(dot));
          found = wildcardRoutes && matchGroup(groupOf(wildcardRoutes), request);
          if (found) return found;
        }
      }
      return any.length > 0 ? matchGroup(groupOf(any), request) : undefined;
    },
  };
}

function isRouteArray(routes: RouteSource | readonly HttpRoute[]): routes is readonly HttpRoute[] {
  return Array.isArray(routes);
}
