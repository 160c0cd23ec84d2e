/**
 * Passive health (outlier detection with a failure ratio over a minimum volume, Envoy's
 * `failure_percentage` idea): within a window of WINDOW_MS, an endpoint that served at least
 * MIN_REQUESTS requests of which at least FAILURE_RATIO failed is marked down for EJECT_BASE_MS ×
 * times down, at most EJECT_MAX_MS, and comes back by itself when that time has passed. What
 * counts as a failure is the caller's (exchange.ts): no answer or a timeout, or a status the
 * rule lists in `passiveHealth.failureCodes` — never merely a status listed for retries, so a
 * client requesting a path that answers 503 cannot eject a pool's endpoints. Health is kept per
 * pool and endpoint (`healthKey`): an endpoint shared by two pools is judged in each.
 *
 * New traffic of a pool avoids its down endpoints only while they are at most half of the pool,
 * rounded down; past that the pool uses all of them ("panic"), so a one-endpoint pool is never
 * ejected. A priority tier whose every endpoint is down hands new traffic to the next tier
 * (pick.ts). State is per isolate and keyed by endpoint id, so it outlives snapshots. Time is
 * passed in.
 */

export const WINDOW_MS = 10_000;
export const MIN_REQUESTS = 10;
export const FAILURE_RATIO = 0.5;
export const EJECT_BASE_MS = 30_000;
export const EJECT_MAX_MS = 300_000;

interface EndpointHealth {
  windowStart: number;
  requests: number;
  failures: number;
  timesEjected: number;
  ejectedUntil: number;
  lastFailureAt: number;
}

export interface PoolMembers {
  readonly name: string;
  /** Ids of every endpoint of the pool, whatever its state. */
  readonly endpoints: readonly { readonly id: string }[];
}

/** The key health is kept under: the pool and the endpoint. */
export function healthKey(poolName: string, endpointId: string): string {
  return `${poolName}\n${endpointId}`;
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
  /** Requests and failures in the current window. */
  requests: number;
  failures: number;
  timesEjected: number;
  ejectedUntil: number | undefined;
}

/** The lens while every endpoint is up: pick.ts skips health lookups when it gets this one. */
export const ALL_HEALTHY: HealthLens = () => undefined;

/** An ejection as the dashboard lists it. */
export interface Ejection {
  at: number;
  pool: string;
  endpoint: string;
  until: number;
  /** e.g. "6 of 10 requests failed within 10 s; last: timeout" */
  reason: string;
}

/** Ejections kept for the admin API, newest last. */
export const EJECTIONS_KEPT = 50;

export class HealthRegistry {
  private readonly states = new Map<string, EndpointHealth>();
  private readonly ejectionLog: Ejection[] = [];
  /** Endpoints ejected at some time; 0 lets the hot path skip every health lookup. */
  private ejections = 0;

  /**
   * True while some endpoint has a failure (or an ejection) on record. While none has, a
   * success changes nothing and need not be recorded.
   */
  get keepsAny(): boolean {
    return this.states.size > 0;
  }

  /** True when no endpoint has been ejected since the registry started or was last clean. */
  get allHealthy(): boolean {
    return this.ejections === 0;
  }

  /**
   * Counts one request's outcome; returns true when it marked the endpoint down. `why` names a
   * failure ("timeout", "status 503") for the ejection's reason.
   */
  record(key: string, failed: boolean, now: number, why = "failure"): boolean {
    let state = this.states.get(key);
    if (state === undefined) {
      if (!failed) return false; // healthy and never failed: nothing to keep
      state = {
        windowStart: now,
        requests: 0,
        failures: 0,
        timesEjected: 0,
        ejectedUntil: 0,
        lastFailureAt: now,
      };
      this.states.set(key, state);
    }
    if (now - state.windowStart >= WINDOW_MS) {
      state.windowStart = now;
      state.requests = 0;
      state.failures = 0;
    }
    state.requests++;
    if (!failed) {
      if (state.failures === 0 && state.timesEjected === 0 && state.ejectedUntil === 0)
        this.states.delete(key);
      return false;
    }
    // A long quiet spell forgives earlier ejections, so the ejection time does not grow forever.
    if (
      state.timesEjected > 0 &&
      state.ejectedUntil === 0 &&
      now - state.lastFailureAt > EJECT_MAX_MS
    )
      state.timesEjected = 0;
    state.lastFailureAt = now;
    state.failures++;
    if (state.requests < MIN_REQUESTS || state.failures < state.requests * FAILURE_RATIO)
      return false;
    if (this.isEjected(key, now)) return false;
    state.timesEjected++;
    state.ejectedUntil = now + Math.min(EJECT_BASE_MS * state.timesEjected, EJECT_MAX_MS);
    const [pool = "", endpoint = ""] = key.split("\n");
    this.ejectionLog.push({
      at: now,
      pool,
      endpoint,
      until: state.ejectedUntil,
      reason: `${state.failures} of ${state.requests} requests failed within ${WINDOW_MS / 1000} s; last: ${why}`,
    });
    if (this.ejectionLog.length > EJECTIONS_KEPT) this.ejectionLog.shift();
    state.windowStart = now;
    state.requests = 0;
    state.failures = 0;
    this.ejections++;
    return true;
  }

  /** The latest ejections, oldest first. */
  recentEjections(): readonly Ejection[] {
    return this.ejectionLog;
  }

  /** Down: it failed too often within a window, and its time out is not over. */
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
    return (
      this.isEjected(healthKey(pool.name, id), now) && this.poolHealth(pool, now).avoided.has(id)
    );
  }

  /**
   * The half-pool rule, in one place: the pool's down endpoints, those new traffic avoids (none
   * in panic, when more than half are down), and whether it is in panic.
   */
  poolHealth(pool: PoolMembers, now: number): PoolHealth {
    const down = new Set<string>();
    for (const endpoint of pool.endpoints)
      if (this.isEjected(healthKey(pool.name, endpoint.id), now)) down.add(endpoint.id);
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

  view(key: string, now: number): HealthView {
    const state = this.states.get(key);
    const ejected = this.isEjected(key, now);
    const current = state !== undefined && now - state.windowStart < WINDOW_MS;
    return {
      requests: current ? state.requests : 0,
      failures: current ? state.failures : 0,
      timesEjected: state?.timesEjected ?? 0,
      ejectedUntil: ejected ? state?.ejectedUntil : undefined,
    };
  }
}
