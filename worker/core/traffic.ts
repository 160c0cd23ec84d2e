/**
 * This isolate's traffic over the last five minutes, in 10-second buckets, for the dashboard:
 * per endpoint the requests, their status classes, retries and a latency histogram (p50/p99),
 * and per rule the requests each pool served (the observed split). Pure: the caller passes the
 * time. Memory is bounded: at most MAX_TRACKED endpoints and rules are followed; past that the
 * summary says it is truncated.
 */

export const TRAFFIC_BUCKET_MS = 10_000;
export const TRAFFIC_BUCKETS = 30;
export const MAX_TRACKED = 1_000;
/** Upper bounds of the latency histogram's buckets, in ms; one more bucket holds the rest. */
export const LATENCY_BOUNDS_MS = [2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 10_000] as const;
const LATENCY_SLOTS = LATENCY_BOUNDS_MS.length + 1;
const CLASSES = ["2xx", "3xx", "4xx", "5xx"] as const;
export type StatusClass = (typeof CLASSES)[number];

/**
 * A ring of TRAFFIC_BUCKETS slots and which bucket each holds: a slot is cleared when a newer
 * bucket claims it, and a slot still holding an older bucket counts for nothing.
 */
abstract class BucketRing {
  private readonly stamps = new Float64Array(TRAFFIC_BUCKETS).fill(-1);

  /** Zeroes the counts of a slot a newer bucket claims. */
  protected abstract clear(slot: number): void;

  /** The slot of bucket `n`, cleared when it last held an older bucket. */
  slot(n: number): number {
    const slot = n % TRAFFIC_BUCKETS;
    if (this.stamps[slot] !== n) {
      this.stamps[slot] = n;
      this.clear(slot);
    }
    return slot;
  }

  /** The slot holding bucket `n`, or -1 when it holds an older one. */
  live(n: number): number {
    const slot = n % TRAFFIC_BUCKETS;
    return this.stamps[slot] === n ? slot : -1;
  }
}

/** Counters of one endpoint. */
class EndpointRing extends BucketRing {
  readonly requests = new Uint32Array(TRAFFIC_BUCKETS);
  readonly classes = new Uint32Array(TRAFFIC_BUCKETS * CLASSES.length);
  readonly retries = new Uint32Array(TRAFFIC_BUCKETS);
  /** Tries that got no answer (refused, reset, timed out): the request went on elsewhere. */
  readonly failedTries = new Uint32Array(TRAFFIC_BUCKETS);
  readonly latency = new Uint32Array(TRAFFIC_BUCKETS * LATENCY_SLOTS);

  protected clear(slot: number): void {
    this.requests[slot] = 0;
    this.retries[slot] = 0;
    this.failedTries[slot] = 0;
    this.classes.fill(0, slot * CLASSES.length, (slot + 1) * CLASSES.length);
    this.latency.fill(0, slot * LATENCY_SLOTS, (slot + 1) * LATENCY_SLOTS);
  }
}

/** Requests per pool of one rule. */
class RuleRing extends BucketRing {
  readonly byPool = new Map<string, Uint32Array>();

  protected clear(slot: number): void {
    for (const counts of this.byPool.values()) counts[slot] = 0;
  }
}

/** Requests answered without a route. */
class CountRing extends BucketRing {
  readonly counts = new Uint32Array(TRAFFIC_BUCKETS);

  protected clear(slot: number): void {
    this.counts[slot] = 0;
  }
}

export interface Served {
  pool: string;
  endpoint: string;
  status: number;
  durationMs: number;
  tries: number;
}

export interface EndpointTraffic {
  pool: string;
  endpoint: string;
  /** One value per bucket, oldest first; p50/p99 are null for a bucket without requests. */
  requests: number[];
  status: Record<StatusClass, number[]>;
  retries: number[];
  failedTries: number[];
  p50Ms: (number | null)[];
  p99Ms: (number | null)[];
  totals: {
    requests: number;
    status: Record<StatusClass, number>;
    retries: number;
    failedTries: number;
    p50Ms: number | null;
    p99Ms: number | null;
  };
}

export interface RuleTraffic {
  route: string;
  rule: string;
  /** Requests each pool served over the window. */
  observed: Record<string, number>;
}

export interface TrafficSummary {
  bucketSeconds: number;
  /** Requests answered without a route (none matched, or none loaded), per bucket. */
  unrouted: number[];
  /** When the newest bucket started. */
  newestBucketAt: number;
  endpoints: EndpointTraffic[];
  rules: RuleTraffic[];
  truncated: boolean;
}

function latencySlot(ms: number): number {
  for (let i = 0; i < LATENCY_BOUNDS_MS.length; i++)
    if (ms <= (LATENCY_BOUNDS_MS[i] as number)) return i;
  return LATENCY_BOUNDS_MS.length;
}

/** The quantile of a histogram, as its bucket's upper bound (the last bucket: its lower bound). */
export function histogramQuantile(counts: ArrayLike<number>, q: number): number | null {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i] as number;
  if (total === 0) return null;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i] as number;
    if (seen >= q * total)
      return (LATENCY_BOUNDS_MS[i] ?? LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.length - 1]) as number;
  }
  return LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.length - 1] as number;
}

function classOf(status: number): number {
  if (status < 300) return 0;
  if (status < 400) return 1;
  if (status < 500) return 2;
  return 3;
}

export class TrafficCounters {
  private readonly endpoints = new Map<string, Map<string, EndpointRing>>();
  private readonly rules = new Map<string, Map<string, RuleRing>>();
  private tracked = 0;
  private truncated = false;
  private readonly unrouted = new CountRing();

  /** A request answered without a route. */
  recordUnrouted(now: number): void {
    const slot = this.unrouted.slot(Math.floor(now / TRAFFIC_BUCKET_MS));
    this.unrouted.counts[slot] = (this.unrouted.counts[slot] as number) + 1;
  }

  /** One answered request of `route`/`rule`; `served` is absent when no endpoint answered. */
  record(route: string, rule: string, served: Served | undefined, now: number): void {
    const n = Math.floor(now / TRAFFIC_BUCKET_MS);
    if (served === undefined) return;
    const ring = this.endpointRing(served.pool, served.endpoint);
    if (ring) {
      const slot = ring.slot(n);
      ring.requests[slot] = (ring.requests[slot] as number) + 1;
      const c = slot * CLASSES.length + classOf(served.status);
      ring.classes[c] = (ring.classes[c] as number) + 1;
      if (served.tries > 1) ring.retries[slot] = (ring.retries[slot] as number) + served.tries - 1;
      const l = slot * LATENCY_SLOTS + latencySlot(served.durationMs);
      ring.latency[l] = (ring.latency[l] as number) + 1;
    }
    const ruleRing = this.ruleRing(route, rule);
    if (ruleRing) {
      const slot = ruleRing.slot(n);
      let counts = ruleRing.byPool.get(served.pool);
      if (counts === undefined) {
        counts = new Uint32Array(TRAFFIC_BUCKETS);
        ruleRing.byPool.set(served.pool, counts);
      }
      counts[slot] = (counts[slot] as number) + 1;
    }
  }

  /** A try of this endpoint that got no answer. */
  recordFailedTry(pool: string, endpoint: string, now: number): void {
    const ring = this.endpointRing(pool, endpoint);
    if (!ring) return;
    const slot = ring.slot(Math.floor(now / TRAFFIC_BUCKET_MS));
    ring.failedTries[slot] = (ring.failedTries[slot] as number) + 1;
  }

  private endpointRing(pool: string, endpoint: string): EndpointRing | undefined {
    return this.ringIn(this.endpoints, pool, endpoint, () => new EndpointRing());
  }

  private ruleRing(route: string, rule: string): RuleRing | undefined {
    return this.ringIn(this.rules, route, rule, () => new RuleRing());
  }

  /** The ring under two keys, made when missing and the cap allows another. */
  private ringIn<R>(
    rings: Map<string, Map<string, R>>,
    outer: string,
    inner: string,
    make: () => R,
  ): R | undefined {
    let byInner = rings.get(outer);
    let ring = byInner?.get(inner);
    if (ring) return ring;
    if (!this.track()) return undefined;
    if (!byInner) {
      byInner = new Map();
      rings.set(outer, byInner);
    }
    ring = make();
    byInner.set(inner, ring);
    return ring;
  }

  private track(): boolean {
    if (this.tracked >= MAX_TRACKED) {
      this.truncated = true;
      return false;
    }
    this.tracked++;
    return true;
  }

  summary(now: number): TrafficSummary {
    const newest = Math.floor(now / TRAFFIC_BUCKET_MS);
    const buckets = Array.from(
      { length: TRAFFIC_BUCKETS },
      (_, i) => newest - TRAFFIC_BUCKETS + 1 + i,
    );
    const endpoints: EndpointTraffic[] = [];
    for (const [pool, byId] of this.endpoints) {
      for (const [endpoint, ring] of byId) {
        const live = buckets.map((n) => ring.live(n));
        const at = (values: Uint32Array, slot: number) => (slot < 0 ? 0 : (values[slot] as number));
        const classAt = (slot: number, c: number) =>
          slot < 0 ? 0 : (ring.classes[slot * CLASSES.length + c] as number);
        const histogramOf = (slots: number[]) => {
          const merged = new Array<number>(LATENCY_SLOTS).fill(0);
          for (const slot of slots)
            if (slot >= 0)
              for (let i = 0; i < LATENCY_SLOTS; i++)
                merged[i] =
                  (merged[i] as number) + (ring.latency[slot * LATENCY_SLOTS + i] as number);
          return merged;
        };
        const requests = live.map((slot) => at(ring.requests, slot));
        const failedTries = live.map((slot) => at(ring.failedTries, slot));
        if (requests.every((r) => r === 0) && failedTries.every((r) => r === 0)) continue;
        const status = Object.fromEntries(
          CLASSES.map((name, c) => [name, live.map((slot) => classAt(slot, c))]),
        ) as Record<StatusClass, number[]>;
        const retries = live.map((slot) => at(ring.retries, slot));
        const all = histogramOf(live);
        const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
        endpoints.push({
          pool,
          endpoint,
          requests,
          status,
          retries,
          failedTries,
          p50Ms: live.map((slot) => histogramQuantile(histogramOf([slot]), 0.5)),
          p99Ms: live.map((slot) => histogramQuantile(histogramOf([slot]), 0.99)),
          totals: {
            requests: sum(requests),
            status: Object.fromEntries(CLASSES.map((name) => [name, sum(status[name])])) as Record<
              StatusClass,
              number
            >,
            retries: sum(retries),
            failedTries: sum(failedTries),
            p50Ms: histogramQuantile(all, 0.5),
            p99Ms: histogramQuantile(all, 0.99),
          },
        });
      }
    }
    const rules: RuleTraffic[] = [];
    for (const [route, byRule] of this.rules) {
      for (const [rule, ring] of byRule) {
        const observed: Record<string, number> = {};
        for (const [pool, counts] of ring.byPool) {
          let total = 0;
          for (const n of buckets) {
            const slot = ring.live(n);
            if (slot >= 0) total += counts[slot] as number;
          }
          if (total > 0) observed[pool] = total;
        }
        if (Object.keys(observed).length > 0) rules.push({ route, rule, observed });
      }
    }
    return {
      bucketSeconds: TRAFFIC_BUCKET_MS / 1000,
      unrouted: buckets.map((n) => {
        const slot = this.unrouted.live(n);
        return slot < 0 ? 0 : (this.unrouted.counts[slot] as number);
      }),
      newestBucketAt: newest * TRAFFIC_BUCKET_MS,
      endpoints,
      rules,
      truncated: this.truncated,
    };
  }
}
