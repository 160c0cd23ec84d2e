import {
  durationMs,
  type HttpRouteRule,
  type InlinePool,
  type PoolDocument,
  type RoutesDocument,
} from "../../contract/index.ts";
import { endpointId } from "./hash.ts";
import { compileMatcher, type Matcher } from "./match.ts";
import { SmoothWrr } from "./wrr.ts";

/**
 * A snapshot is everything a request needs, compiled once from the routes document and the pool
 * documents it references: the matcher, each rule's backends, and fresh balancing state.
 */

export interface CompiledEndpoint {
  /** Hash of the URL: names the endpoint in cookies and health state, never its address. */
  id: string;
  /** Origin without trailing slash, e.g. `http://127.0.0.1:8080`. */
  origin: string;
  weight: number;
  state: "ready" | "draining";
  zone: string | undefined;
}

export interface CompiledPool {
  name: string;
  source: "inline" | "kv";
  generation: number | undefined;
  updatedAt: string | undefined;
  endpoints: CompiledEndpoint[];
  transportBinding: string | undefined;
  /** New traffic: ready endpoints by weight. State lives as long as the snapshot. */
  wrr: SmoothWrr;
}

export interface CompiledRef {
  poolName: string;
  weight: number;
  priority: number;
  /** `undefined`: no such pool, or its document is invalid; its share answers 500. */
  pool: CompiledPool | undefined;
}

/** backendRefs of one priority, balanced by weight. */
export interface Tier {
  priority: number;
  refs: CompiledRef[];
  wrr: SmoothWrr;
}

export interface CompiledRule {
  routeName: string;
  routeIndex: number;
  ruleIndex: number;
  /** `route/rule name` or `route/rule index`: names the rule in logs, errors and cookies. */
  label: string;
  tiers: Tier[];
  source: HttpRouteRule;
  timeouts: { requestMs: number | undefined; backendRequestMs: number | undefined };
}

export interface Snapshot {
  generation: string;
  document: RoutesDocument;
  matcher: Matcher;
  /** rules[routeIndex][ruleIndex] */
  rules: CompiledRule[][];
  pools: Map<string, CompiledPool>;
  warnings: string[];
}

export interface SnapshotInput {
  generation: string;
  routes: RoutesDocument;
  /** Pool documents from KV by pool name; absent or null: no such key. */
  kvPools: ReadonlyMap<string, PoolDocument | null>;
  /** Local mode: loopback and private IP URLs are expected, not flagged. */
  local?: boolean;
}

const IP_HOST = /^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\])$/;

function compilePool(
  name: string,
  doc: PoolDocument | InlinePool,
  source: "inline" | "kv",
): CompiledPool {
  const endpoints = doc.endpoints.map((endpoint) => {
    const origin = new URL(endpoint.url).origin;
    return {
      id: endpointId(origin),
      origin,
      weight: endpoint.weight,
      state: endpoint.state,
      zone: endpoint.zone,
    };
  });
  return {
    name,
    source,
    generation: doc.generation,
    updatedAt: doc.updatedAt,
    endpoints,
    transportBinding: doc.transport?.binding,
    wrr: new SmoothWrr(endpoints.map((e) => (e.state === "ready" ? e.weight : 0))),
  };
}

/** Every pool name the routes document's backendRefs name, in document order. */
export function referencedPools(routes: RoutesDocument): string[] {
  const names = new Set<string>();
  for (const route of routes.routes) {
    for (const rule of route.rules) for (const ref of rule.backendRefs) names.add(ref.pool);
  }
  return [...names];
}

/** Referenced pools that must be read from KV: those not defined inline. */
export function kvPoolNames(routes: RoutesDocument): string[] {
  return referencedPools(routes).filter((name) => !Object.hasOwn(routes.pools, name));
}

function optionalMs(text: string | undefined): number | undefined {
  return text === undefined ? undefined : durationMs(text);
}

export function compileSnapshot(input: SnapshotInput): Snapshot {
  const { routes, kvPools } = input;
  const warnings: string[] = [];
  const pools = new Map<string, CompiledPool>();
  for (const name of referencedPools(routes)) {
    const inline = routes.pools[name];
    const stored = kvPools.get(name);
    if (inline) {
      if (stored) warnings.push(`pool ${name}: defined inline and in KV; the inline pool wins`);
      pools.set(name, compilePool(name, inline, "inline"));
    } else if (stored) {
      pools.set(name, compilePool(name, stored, "kv"));
    } else {
      warnings.push(
        `pool ${name}: no inline pool and no KV key pool:${name}; its share answers 500`,
      );
    }
  }
  for (const pool of pools.values()) {
    if (pool.endpoints.length === 0)
      warnings.push(`pool ${pool.name}: no endpoints; it answers 503`);
    if (!input.local && pool.transportBinding === undefined) {
      const ipEndpoint = pool.endpoints.find((e) => IP_HOST.test(new URL(e.origin).hostname));
      if (ipEndpoint) {
        warnings.push(
          `pool ${pool.name}: endpoint ${ipEndpoint.origin} is an IP address; Workers cannot fetch IP addresses without transport.binding (DESIGN §5)`,
        );
      }
    }
  }

  const rules = routes.routes.map((route, routeIndex) =>
    route.rules.map((rule, ruleIndex): CompiledRule => {
      const refs = rule.backendRefs.map((ref) => ({
        poolName: ref.pool,
        weight: ref.weight,
        priority: ref.priority,
        pool: pools.get(ref.pool),
      }));
      const priorities = [...new Set(refs.map((r) => r.priority))].sort((a, b) => a - b);
      const tiers = priorities.map((priority) => {
        const tierRefs = refs.filter((r) => r.priority === priority);
        return { priority, refs: tierRefs, wrr: new SmoothWrr(tierRefs.map((r) => r.weight)) };
      });
      return {
        routeName: route.name,
        routeIndex,
        ruleIndex,
        label: `${route.name}/${rule.name ?? ruleIndex}`,
        tiers,
        source: rule,
        timeouts: {
          requestMs: optionalMs(rule.timeouts?.request),
          backendRequestMs: optionalMs(rule.timeouts?.backendRequest),
        },
      };
    }),
  );

  return {
    generation: input.generation,
    document: routes,
    matcher: compileMatcher(routes.routes),
    rules,
    pools,
    warnings,
  };
}
