import { type CompiledRegex, compileRegex, type HttpRoute } from "../../contract/index.ts";
import { headerCandidates, type RequestView } from "./request.ts";

/**
 * HTTPRoute matching, compiled once per snapshot (README, "How a request is routed").
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
  order: number;
  method: string | undefined;
  headers: readonly ValueCondition[];
  query: readonly ValueCondition[];
}

/** The entries of one hostname; parts are created only when used, as most hosts need one. */
interface HostGroup {
  exact?: Map<string, Entry[]>;
  prefix?: Map<string, Entry[]>;
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

/** Method match first, then more headers, then more query params, then document order. */
function byPrecedence(a: Entry, b: Entry): number {
  return (
    Number(b.method !== undefined) - Number(a.method !== undefined) ||
    b.headers.length - a.headers.length ||
    b.query.length - a.query.length ||
    a.order - b.order
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
    let found = firstHolding(prefixes.get(path), request);
    for (let slash = path.lastIndexOf("/"); !found && slash >= 0; ) {
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

function newGroup(): HostGroup {
  return {};
}

function push(map: Map<string, Entry[]>, key: string, entry: Entry): Map<string, Entry[]> {
  const list = map.get(key);
  if (list) list.push(entry);
  else map.set(key, [entry]);
  return map;
}

export function compileMatcher(routes: readonly HttpRoute[]): Matcher {
  const exactHosts = new Map<string, HostGroup>();
  const wildcardHosts = new Map<string, HostGroup>(); // key: ".example.com" for "*.example.com"
  let anyHost: HostGroup | undefined;
  const groupFor = (hostname: string | undefined): HostGroup => {
    if (hostname === undefined) {
      anyHost ??= newGroup();
      return anyHost;
    }
    const lower = hostname.toLowerCase();
    const [map, key] = lower.startsWith("*.")
      ? [wildcardHosts, lower.slice(1)]
      : [exactHosts, lower];
    let group = map.get(key);
    if (!group) {
      group = newGroup();
      map.set(key, group);
    }
    return group;
  };

  let order = 0;
  routes.forEach((route, routeIndex) => {
    const groups =
      route.hostnames.length === 0
        ? [groupFor(undefined)]
        : [...new Set(route.hostnames.map(groupFor))];
    route.rules.forEach((rule, ruleIndex) => {
      rule.matches.forEach((match, matchIndex) => {
        const entry: Entry = {
          routeIndex,
          ruleIndex,
          matchIndex,
          order: order++,
          method: match.method,
          headers: match.headers.length
            ? match.headers.map((h) => valueCondition(h, true))
            : NO_CONDITIONS,
          query: match.queryParams.length
            ? match.queryParams.map((q) => valueCondition(q, false))
            : NO_CONDITIONS,
        };
        const { type, value } = match.path;
        for (const group of groups) {
          if (type === "Exact") group.exact = push(group.exact ?? new Map(), value, entry);
          else if (type === "PathPrefix") {
            group.prefix = push(group.prefix ?? new Map(), prefixKey(value), entry);
          } else {
            group.regex ??= [];
            group.regex.push({ pattern: fullMatch(value), entry });
          }
        }
      });
    });
  });
  const all = [...exactHosts.values(), ...wildcardHosts.values(), ...(anyHost ? [anyHost] : [])];
  for (const group of all) {
    for (const list of group.exact?.values() ?? []) list.sort(byPrecedence);
    for (const list of group.prefix?.values() ?? []) list.sort(byPrecedence);
  }

  return {
    match(request) {
      const host = request.host;
      const exactGroup = exactHosts.get(host);
      let found = exactGroup && matchGroup(exactGroup, request);
      if (found) return found;
      if (wildcardHosts.size > 0) {
        // Longest wildcard first: ".b.example.com", then ".example.com", then ".com".
        for (let dot = host.indexOf(".", 1); dot !== -1; dot = host.indexOf(".", dot + 1)) {
          const group = wildcardHosts.get(host.slice(dot));
          found = group && matchGroup(group, request);
          if (found) return found;
        }
      }
      return anyHost && matchGroup(anyHost, request);
    },
  };
}
