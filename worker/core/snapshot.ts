import {
  durationMs,
  type HttpRouteRule,
  MAX_RULES_PER_ROUTE,
  type RoutesDocument,
} from "../../contract/index.ts";
import { type SessionSettings, sessionSettings } from "../sticky/cookie.ts";
import { type CompiledPoolDocument, compilePoolDocument } from "./compiled-pool.ts";
import type { PartAdded } from "./compiled-table.ts";
import { type CompiledFilters, compileFilters, matchedPrefix } from "./filters.ts";
import { compileMatcher, type Matcher } from "./match.ts";
import { type RetrySettings, retrySettings } from "./retry-policy.ts";
import { RouteTable, type SnapshotRoutes } from "./route-table.ts";
import { type Balancer, balancer, SmoothWrr } from "./wrr.ts";

/**
 * A snapshot is everything a request needs, built from the routes (the whole document as a
 * RouteTable, or the parts of a compiled layout read so far as a CompiledRouteTable, which grows
 * by addPart) and the pool documents they reference. A hostname's matcher entries, a rule's
 * backends and a pool's balancing state are compiled the first time a request needs them and
 * kept for the snapshot's life, so a large document costs memory only for what this isolate
 * actually serves.
 */

export interface CompiledPool extends CompiledPoolDocument {
  /** New traffic: ready endpoints by weight. State starts at zero in each snapshot. */
  wrr: SmoothWrr;
}

export interface CompiledRef {
  poolName: string;
  weight: number;
  priority: number;
  /** `undefined`: no such pool, or its document is invalid; its share answers 500. */
  pool: CompiledPool | undefined;
  /** The ref's own filters, applied when it is picked; undefined when it has none. */
  filters: RuleFilters | undefined;
}

/** Filters of a rule or a backendRef, with their mirror pools resolved in this snapshot. */
export type RuleFilters = CompiledFilters<CompiledPool | undefined>;

/** backendRefs of one priority, balanced by weight. */
export interface Tier {
  priority: number;
  refs: CompiledRef[];
  wrr: Balancer;
}

export interface Timeouts {
  requestMs: number | undefined;
  backendRequestMs: number | undefined;
}

export interface CompiledRule {
  routeName: string;
  routeIndex: number;
  ruleIndex: number;
  tiers: Tier[];
  source: HttpRouteRule;
  timeouts: Timeouts;
  /** The rule's retry policy settings, with defaults filled in. */
  retry: RetrySettings;
  /** Statuses that count as failures for passive health (passiveHealth.failureCodes). */
  healthCodes: ReadonlySet<number>;
  /** Cookie name and limits when the rule has sessionPersistence. */
  session: SessionSettings | undefined;
  /** The rule's filters; undefined when it has none, so a plain rule pays one check. */
  filters: RuleFilters | undefined;
  /** Whether some backendRef of the rule has filters of its own. */
  refFilters: boolean;
}

export interface SnapshotInput {
  generation: string;
  /** A validated routes document, or the table the store keeps of one. */
  routes: SnapshotRoutes | RoutesDocument;
  /** Compiled pool documents from KV by pool name; absent or null: no such key. */
  kvPools: ReadonlyMap<string, CompiledPoolDocument | null>;
  /** Local mode: loopback and private IP URLs are expected, not flagged. */
  local?: boolean;
  /** Bindings pools may use (ALLOWED_BINDINGS); others are warned about. */
  allowedBindings?: ReadonlySet<string>;
}

/** Shared by every rule without passiveHealth.failureCodes: an empty Set costs 152 bytes. */
const NO_CODES: ReadonlySet<number> = new Set();
const NO_TIMEOUTS: Timeouts = Object.freeze({ requestMs: undefined, backendRequestMs: undefined });
/** An origin whose host is an IPv4 or IPv6 literal. */
const IP_ORIGIN = /^https?:\/\/(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\])(:\d+)?$/i;

/** `route/rule name` or `route/rule index`: names a rule in logs, errors and cookies. */
export function ruleLabel(rule: CompiledRule): string {
  return `${rule.routeName}/${rule.source.name ?? rule.ruleIndex}`;
}

function tableOf(routes: SnapshotRoutes | RoutesDocument): SnapshotRoutes {
  return "hosts" in routes ? routes : new RouteTable(routes);
}

/** Pools among `names` (every pool the routes name) that must be read from KV: not inline. */
export function kvPoolNames(
  routes: SnapshotRoutes | RoutesDocument,
  names?: readonly string[],
): string[] {
  const table = tableOf(routes);
  return (names ?? table.referencedPools).filter((name) => !Object.hasOwn(table.pools, name));
}

/**
 * A timeout in milliseconds, or `undefined` for none: unset, or the zero duration, which Gateway
 * API says disables the timeout ("0s").
 */
function timeoutMs(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const ms = durationMs(text);
  return ms === 0 ? undefined : ms;
}

export class Snapshot {
  readonly generation: string;
  readonly routes: SnapshotRoutes;
  readonly matcher: Matcher;
  readonly warnings: string[] = [];
  /** Every pool the routes in memory reference that exists, by name. */
  readonly specs = new Map<string, CompiledPoolDocument>();
  /** The pools read from KV this snapshot was built with (null: no such key), by name. */
  readonly stored = new Map<string, CompiledPoolDocument | null>();
  private readonly pools = new Map<string, CompiledPool>();
  private readonly rules = new Map<number, CompiledRule>();
  private readonly local: boolean;
  private readonly allowedBindings: ReadonlySet<string> | undefined;

  constructor(input: SnapshotInput) {
    const routes = tableOf(input.routes);
    this.generation = input.generation;
    this.routes = routes;
    this.local = input.local ?? false;
    this.allowedBindings = input.allowedBindings;
    this.admit(routes.referencedPools, input.kvPools);
    this.warnings.push(...routes.warnings);
    this.matcher = compileMatcher(routes);
  }

  /**
   * Takes in a part of the routes read since the snapshot was built (a shard of the compiled
   * layout): the pools it added to the routes in memory, with those read from KV, and the
   * problems of its routes.
   */
  addPart(added: PartAdded, kvPools: ReadonlyMap<string, CompiledPoolDocument | null>): void {
    this.admit(added.pools, kvPools);
    this.warnings.push(...added.warnings);
  }

  /** Resolves the pools `names` (inline, or from `kvPools`), with a warning for each problem. */
  private admit(
    names: readonly string[],
    kvPools: ReadonlyMap<string, CompiledPoolDocument | null>,
  ): void {
    const { pools: inlinePools } = this.routes;
    for (const name of names) {
      // Own properties only: a ref to "constructor" or "__proto__" names no pool, not a prototype member.
      const inline = Object.hasOwn(inlinePools, name) ? inlinePools[name] : undefined;
      const stored = kvPools.get(name);
      if (!inline) this.stored.set(name, stored ?? null);
      let spec: CompiledPoolDocument | undefined;
      if (inline) {
        if (stored)
          this.warnings.push(`pool ${name}: defined inline and in KV; the inline pool wins`);
        spec = compilePoolDocument(name, inline, "inline");
      } else if (stored) {
        spec = stored;
      } else {
        this.warnings.push(
          `pool ${name}: no inline pool and no KV key pool:${name}; its share answers 500`,
        );
        continue;
      }
      this.specs.set(name, spec);
      this.warnPool(spec);
    }
  }

  private warnPool(spec: CompiledPoolDocument): void {
    if (spec.endpoints.length === 0)
      this.warnings.push(`pool ${spec.name}: no endpoints; it answers 503`);
    if (
      spec.transportBinding !== undefined &&
      this.allowedBindings !== undefined &&
      !this.allowedBindings.has(spec.transportBinding)
    ) {
      this.warnings.push(
        `pool ${spec.name}: transport binding ${spec.transportBinding} is not in ALLOWED_BINDINGS; its requests answer 502`,
      );
    }
    if (!this.local && spec.transportBinding === undefined) {
      const ip = spec.endpoints.find((e) => IP_ORIGIN.test(e.origin));
      if (ip) {
        this.warnings.push(
          `pool ${spec.name}: endpoint ${ip.origin} is an IP address; Workers cannot fetch IP addresses without transport.binding (docs/deploy.md §3)`,
        );
      }
    }
  }

  /** A pool with this snapshot's balancing state, or undefined when it does not exist. */
  pool(name: string): CompiledPool | undefined {
    let pool = this.pools.get(name);
    if (pool === undefined) {
      const spec = this.specs.get(name);
      if (spec === undefined) return undefined;
      pool = {
        ...spec,
        wrr: new SmoothWrr(spec.endpoints.map((e) => (e.state === "ready" ? e.weight : 0))),
      };
      this.pools.set(name, pool);
    }
    return pool;
  }

  /** A rule ready to pick backends for, or undefined when the document has no such rule. */
  rule(routeIndex: number, ruleIndex: number): CompiledRule | undefined {
    const key = routeIndex * MAX_RULES_PER_ROUTE + ruleIndex; // one number per rule position;
    let rule = this.rules.get(key);
    if (rule === undefined) {
      const route = this.routes.route(routeIndex);
      const source = route?.rules[ruleIndex];
      if (!route || !source) return undefined;
      const tiers = this.tiersOf(source);
      rule = {
        routeName: route.name,
        routeIndex,
        ruleIndex,
        tiers,
        filters: compileFilters(source.filters, matchedPrefix(source), (name) => this.pool(name)),
        refFilters: tiers.some((tier) => tier.refs.some((ref) => ref.filters !== undefined)),
        source,
        retry: retrySettings(source),
        healthCodes: source.passiveHealth?.failureCodes.length
          ? new Set(source.passiveHealth.failureCodes)
          : NO_CODES,
        session: source.sessionPersistence
          ? sessionSettings(source.sessionPersistence, route.name, source.name ?? ruleIndex)
          : undefined,
        timeouts: source.timeouts
          ? {
              requestMs: timeoutMs(source.timeouts.request),
              backendRequestMs: timeoutMs(source.timeouts.backendRequest),
            }
          : NO_TIMEOUTS,
      };
      this.rules.set(key, rule);
    }
    return rule;
  }

  /** backendRefs grouped by priority, most preferred first. */
  private tiersOf(rule: HttpRouteRule): Tier[] {
    const prefix = matchedPrefix(rule);
    const refs = rule.backendRefs.map((ref) => ({
      poolName: ref.pool,
      weight: ref.weight,
      priority: ref.priority,
      pool: this.pool(ref.pool),
      filters: compileFilters(ref.filters, prefix, (name) => this.pool(name)),
    }));
    const priorities = [...new Set(refs.map((r) => r.priority))].sort((a, b) => a - b);
    return priorities.map((priority) => {
      // One priority (most rules): the refs as mapped, exactly as long as they are; a filtered
      // array keeps spare capacity for the rule's lifetime.
      const tierRefs =
        priorities.length === 1 ? refs : refs.filter((r) => r.priority === priority).slice();
      return { priority, refs: tierRefs, wrr: balancer(tierRefs.map((r) => r.weight)) };
    });
  }
}

export function compileSnapshot(input: SnapshotInput): Snapshot {
  return new Snapshot(input);
}
