import type { CompiledEndpoint } from "./compiled-pool.ts";
import { ALL_HEALTHY, type HealthLens } from "./health.ts";
import type { CompiledPool, CompiledRef, CompiledRule, Tier } from "./snapshot.ts";

/**
 * Selection as an ordered list (Pingora, Envoy): the first candidate is the choice, the rest is
 * the order retries and failover walk.
 *
 * - A sticky endpoint (session persistence) comes first whenever it is in one of the rule's
 *   pools and not ejected, whatever its weight or state.
 * - Otherwise: the first priority tier with a healthy endpoint; a backendRef of it by smooth WRR
 *   among refs whose pool has a healthy endpoint (a ref to a missing pool keeps its share and
 *   answers 500); an endpoint of that pool by smooth WRR among healthy ones.
 * - Fallbacks: the rest of that pool (listed order, from the choice on), the other pools of the
 *   tier, then the lower tiers. Endpoints with weight 0, draining or ejected take no new traffic
 *   and are left out. The fallbacks are listed only when asked for.
 */

export interface Candidate {
  endpoint: CompiledEndpoint;
  pool: CompiledPool;
  /** The backendRef the endpoint is reached through, whose filters apply to the try. */
  ref?: CompiledRef;
}

export type Choice =
  | {
      kind: "endpoints";
      ref: CompiledRef | undefined;
      first: Candidate;
      sticky: boolean;
      candidates: () => Candidate[];
    }
  /** The chosen backendRef names a pool that does not exist: 500 for its share. */
  | { kind: "missing-pool"; ref: CompiledRef }
  /** Nothing can take new traffic: 503. */
  | { kind: "unavailable"; reason: string }
  /** Every backendRef of the rule has weight 0: no traffic is meant for any (Gateway API: 500). */
  | { kind: "weight-zero" };

function takesNewTraffic(endpoint: CompiledEndpoint): boolean {
  return endpoint.weight > 0 && endpoint.state === "ready";
}

/** Whether some endpoint of the pool takes new traffic and is not down. */
function healthyIn(pool: CompiledPool, health: HealthLens): boolean {
  const down = health(pool)?.down;
  for (const endpoint of pool.endpoints) {
    if (takesNewTraffic(endpoint) && !down?.has(endpoint.id)) return true;
  }
  return false;
}

/** Endpoints of a pool that take new traffic, from index `start` on, wrapping around. */
function rotation(
  pool: CompiledPool,
  start: number,
  health: HealthLens,
  out: Candidate[],
  seen: Set<string>,
  ref: CompiledRef | undefined,
): void {
  const avoided = health(pool)?.avoided;
  const n = pool.endpoints.length;
  for (let k = 0; k < n; k++) {
    const endpoint = pool.endpoints[(start + k) % n] as CompiledEndpoint;
    if (takesNewTraffic(endpoint) && !avoided?.has(endpoint.id) && !seen.has(endpoint.id)) {
      seen.add(endpoint.id);
      out.push({ endpoint, pool, ref });
    }
  }
}

/** The failover order of a rule, starting with `first` and then `pool` from index `start`. */
function orderCandidates(
  rule: CompiledRule,
  first: Candidate | undefined,
  pool: CompiledPool | undefined,
  start: number,
  health: HealthLens,
  poolRef: CompiledRef | undefined,
): Candidate[] {
  const out: Candidate[] = [];
  const seen = new Set<string>();
  if (first) {
    out.push(first);
    seen.add(first.endpoint.id);
  }
  if (pool) rotation(pool, Math.max(start, 0), health, out, seen, poolRef);
  for (const tier of rule.tiers) {
    for (const ref of tier.refs) {
      // A ref of weight 0 takes no new traffic, and a retry is new traffic.
      if (ref.pool && ref.pool !== pool && ref.weight > 0)
        rotation(ref.pool, 0, health, out, seen, ref);
    }
  }
  return out;
}

/** The first backendRef of the rule whose pool is `pool`. */
function refOfPool(rule: CompiledRule, pool: CompiledPool): CompiledRef | undefined {
  for (const tier of rule.tiers) for (const ref of tier.refs) if (ref.pool === pool) return ref;
  return undefined;
}

/** The first tier with a healthy endpoint; the last tier when none has one. */
function activeTier(rule: CompiledRule, health: HealthLens): Tier | undefined {
  if (rule.tiers.length <= 1) return rule.tiers[0];
  for (const tier of rule.tiers) {
    if (tier.refs.some((ref) => ref.weight > 0 && ref.pool && healthyIn(ref.pool, health)))
      return tier;
  }
  // No tier has a healthy endpoint: the first that takes traffic at all, as if all were healthy.
  return rule.tiers.find((tier) => tier.refs.some((ref) => ref.weight > 0)) ?? rule.tiers[0];
}

const WEIGHT_ZERO: Choice = Object.freeze({ kind: "weight-zero" });

export function pick(
  rule: CompiledRule,
  health: HealthLens = ALL_HEALTHY,
  sticky?: Candidate,
): Choice {
  if (sticky) {
    const index = sticky.pool.endpoints.indexOf(sticky.endpoint);
    // Filters of a backendRef apply to its pool's endpoints, a sticky one included.
    const stickyRef = rule.refFilters ? refOfPool(rule, sticky.pool) : undefined;
    const first = stickyRef ? { ...sticky, ref: stickyRef } : sticky;
    return {
      kind: "endpoints",
      ref: undefined,
      first,
      sticky: true,
      candidates: () => orderCandidates(rule, first, sticky.pool, index + 1, health, stickyRef),
    };
  }
  const tier = activeTier(rule, health);
  const refEligible =
    tier && health !== ALL_HEALTHY
      ? (i: number) => {
          const p = tier.refs[i]?.pool;
          return !p || healthyIn(p, health);
        }
      : undefined;
  let ref = tier?.refs[tier.wrr.next(refEligible)];
  // Every ref of the tier without a healthy endpoint: balance as if all were healthy.
  if (!ref && tier && refEligible) ref = tier.refs[tier.wrr.next()];
  if (!ref) return WEIGHT_ZERO;
  const pool = ref.pool;
  if (!pool) return { kind: "missing-pool", ref };
  const avoided = health(pool)?.avoided;
  const chosen = pool.wrr.next(
    avoided?.size ? (i) => !avoided.has((pool.endpoints[i] as CompiledEndpoint).id) : undefined,
  );
  const endpoint = pool.endpoints[chosen];
  if (endpoint) {
    const first = { endpoint, pool, ref };
    return {
      kind: "endpoints",
      ref,
      first,
      sticky: false,
      candidates: () => orderCandidates(rule, first, pool, chosen + 1, health, ref),
    };
  }
  // The chosen pool takes no new traffic: fail over along the candidate order.
  const fallbacks = orderCandidates(rule, undefined, pool, 0, health, ref);
  const first = fallbacks[0];
  if (first) return { kind: "endpoints", ref, first, sticky: false, candidates: () => fallbacks };
  const reason =
    pool.endpoints.length === 0 ? "has no endpoints" : "has no endpoint taking new traffic";
  return { kind: "unavailable", reason: `pool ${pool.name} ${reason}` };
}
