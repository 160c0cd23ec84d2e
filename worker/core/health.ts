/**
 * Passive health (outlier detection, as Envoy's consecutive-5xx): an endpoint that fails
 * FAILURES_TO_EJECT times in a row is marked down for EJECT_BASE_MS × times down, at most
 * EJECT_MAX_MS, and comes back by itself when that time has passed. New traffic of a pool avoids
 * its down endpoints only while they are at most half of the pool, rounded down; past that the
 * pool uses all of them ("panic"), so a one-endpoint pool is never ejected. A priority tier whose
 * every endpoint is down hands new traffic to the next tier (pick.ts).
 * State is per isolate and keyed by endpoint id, so it outlives snapshots. Time is passed in.
 */

export const FAILURES_TO_EJECT = 5;
export const EJECT_BASE_MS = 30_000;
export const EJECT_MAX_MS = 300_000;

interface EndpointHealth {
  consecutiveFailures: number;
  timesEjected: number;
  ejectedUntil: number;
  lastFailureAt: number;
}

export interface PoolMembers {
  /** Ids of every endpoint of the pool, whatever its state. */
  readonly endpoints: readonly { readonly id: string }[];
}

/** Passive health of a pool as one request sees it; undefined: every endpoint is healthy. */
export interface PoolHealth {
  /** Endpoints new traffic avoids: down ones, unless the pool is in panic. */
  avoided: ReadonlySet<string>;
  /** Endpoints that are down, panic or not. */
  down: ReadonlySet<string>;
  /** More than half of the pool is down: new traffic uses every endpoint. */
  panic: boolean;
}

/** A request's view of passive health, pool by pool. */
export type HealthLens = (pool: PoolMembers) => PoolHealth | undefined;

export interface HealthView {
  consecutiveFailures: number;
  timesEjected: number;
  ejectedUntil: number | undefined;
}

/** The lens while every endpoint is up: pick.ts skips health lookups when it gets this one. */
export const ALL_HEALTHY: HealthLens = () => undefined;

export class HealthRegistry {
  private readonly states = new Map<string, EndpointHealth>();
  /** Endpoints ejected at some time; 0 lets the hot path skip every health lookup. */
  private ejections = 0;

  /** True when no endpoint has been ejected since the registry started or was last clean. */
  get allHealthy(): boolean {
    return this.ejections === 0;
  }

  recordSuccess(id: string): void {
    const state = this.states.get(id);
    if (state === undefined) return;
    state.consecutiveFailures = 0;
    if (state.ejectedUntil === 0 && state.timesEjected === 0) this.states.delete(id);
  }

  /** Counts a failure; returns true when it marked the endpoint down. */
  recordFailure(id: string, now: number): boolean {
    let state = this.states.get(id);
    if (state === undefined) {
      state = { consecutiveFailures: 0, timesEjected: 0, ejectedUntil: 0, lastFailureAt: now };
      this.states.set(id, state);
    }
    // A long quiet spell forgives earlier ejections, so the ejection time does not grow forever.
    if (
      state.timesEjected > 0 &&
      state.ejectedUntil === 0 &&
      now - state.lastFailureAt > EJECT_MAX_MS
    ) {
      state.timesEjected = 0;
    }
    state.lastFailureAt = now;
    state.consecutiveFailures++;
    if (state.consecutiveFailures < FAILURES_TO_EJECT || this.isEjected(id, now)) return false;
    state.timesEjected++;
    state.ejectedUntil = now + Math.min(EJECT_BASE_MS * state.timesEjected, EJECT_MAX_MS);
    state.consecutiveFailures = 0;
    this.ejections++;
    return true;
  }

  /** Down: failed FAILURES_TO_EJECT times in a row, and its time out is not over. */
  isEjected(id: string, now: number): boolean {
    if (this.ejections === 0) return false;
    const state = this.states.get(id);
    if (state === undefined || state.ejectedUntil === 0) return false;
    if (now < state.ejectedUntil) return true;
    state.ejectedUntil = 0; // back by itself
    this.ejections--;
    return false;
  }

  /**
   * Whether new traffic of this pool should avoid the endpoint: down, unless more than half of
   * the pool is down (panic), in which case every endpoint takes traffic. The rule itself lives
   * in poolHealth.
   */
  avoids(id: string, pool: PoolMembers, now: number): boolean {
    return this.isEjected(id, now) && this.poolHealth(pool, now).avoided.has(id);
  }

  /**
   * The half-pool rule, in one place: the pool's down endpoints, those new traffic avoids (none
   * in panic, when more than half are down), and whether it is in panic.
   */
  poolHealth(pool: PoolMembers, now: number): PoolHealth {
    const down = new Set<string>();
    for (const endpoint of pool.endpoints)
      if (this.isEjected(endpoint.id, now)) down.add(endpoint.id);
    const panic = down.size > Math.floor(pool.endpoints.length / 2);
    return { avoided: panic ? new Set() : down, down, panic };
  }

  /**
   * Passive health for one request at `now`, each pool looked up once; nothing to look up while
   * every endpoint is up.
   */
  lens(now: number): HealthLens {
    if (this.allHealthy) return ALL_HEALTHY;
    const cache = new Map<PoolMembers, PoolHealth | undefined>();
    return (pool) => {
      if (cache.has(pool)) return cache.get(pool);
      const found = this.poolHealth(pool, now);
      const result = found.down.size > 0 ? found : undefined;
      cache.set(pool, result);
      return result;
    };
  }

  view(id: string, now: number): HealthView {
    const state = this.states.get(id);
    const ejected = this.isEjected(id, now);
    return {
      consecutiveFailures: state?.consecutiveFailures ?? 0,
      timesEjected: state?.timesEjected ?? 0,
      ejectedUntil: ejected ? state?.ejectedUntil : undefined,
    };
  }
}
