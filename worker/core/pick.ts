import type { CompiledEndpoint, CompiledPool, CompiledRef, CompiledRule } from "./snapshot.ts";

/**
 * Selection as an ordered list (Pingora, Envoy): the first candidate is the choice, the rest is
 * the order retries and failover walk. Two levels of smooth WRR: a backendRef of the first
 * priority by weight, then an endpoint of its pool by weight. The fallbacks are the rest of that
 * pool (listed order, starting after the choice), then the other pools of the same priority,
 * then lower priorities. Endpoints with weight 0 or draining take no new traffic, so they are
 * left out. The fallbacks are listed only when asked for: most requests need just the first.
 */

export interface Candidate {
  endpoint: CompiledEndpoint;
  pool: CompiledPool;
}

export type Pick =
  | { kind: "endpoints"; ref: CompiledRef; first: Candidate; candidates: () => Candidate[] }
  /** The chosen backendRef names a pool that does not exist: 500 for its share. */
  | { kind: "missing-pool"; ref: CompiledRef }
  /** Nothing can take new traffic: 503. */
  | { kind: "unavailable"; reason: string };

export function takesNewTraffic(endpoint: CompiledEndpoint): boolean {
  return endpoint.weight > 0 && endpoint.state === "ready";
}

/** Endpoints of a pool that take new traffic, from index `start` on, wrapping around. */
function rotation(pool: CompiledPool, start: number, out: Candidate[], seen: Set<string>): void {
  const n = pool.endpoints.length;
  for (let k = 0; k < n; k++) {
    const endpoint = pool.endpoints[(start + k) % n] as CompiledEndpoint;
    if (takesNewTraffic(endpoint) && !seen.has(endpoint.id)) {
      seen.add(endpoint.id);
      out.push({ endpoint, pool });
    }
  }
}

/** The ordered candidates of a rule: `chosen` first, then the failover order. */
export function orderCandidates(rule: CompiledRule, ref: CompiledRef, chosen: number): Candidate[] {
  const out: Candidate[] = [];
  const seen = new Set<string>();
  if (ref.pool) rotation(ref.pool, Math.max(chosen, 0), out, seen);
  for (const tier of rule.tiers) {
    for (const other of tier.refs) {
      const sameTierZeroWeight = tier.priority === ref.priority && other.weight === 0;
      if (other !== ref && other.pool && !sameTierZeroWeight) rotation(other.pool, 0, out, seen);
    }
  }
  return out;
}

export function pick(rule: CompiledRule): Pick {
  const tier = rule.tiers[0];
  const ref = tier?.refs[tier.wrr.next()];
  if (!ref) return { kind: "unavailable", reason: "every backendRef has weight 0" };
  const pool = ref.pool;
  if (!pool) return { kind: "missing-pool", ref };
  const chosen = pool.wrr.next();
  const endpoint = pool.endpoints[chosen];
  if (endpoint) {
    return {
      kind: "endpoints",
      ref,
      first: { endpoint, pool },
      candidates: () => orderCandidates(rule, ref, chosen),
    };
  }
  // The chosen pool takes no new traffic: fail over along the candidate order.
  const fallbacks = orderCandidates(rule, ref, 0);
  const first = fallbacks[0];
  if (first) return { kind: "endpoints", ref, first, candidates: () => fallbacks };
  const reason =
    pool.endpoints.length === 0 ? "has no endpoints" : "has no endpoint taking new traffic";
  return { kind: "unavailable", reason: `pool ${pool.name} ${reason}` };
}
