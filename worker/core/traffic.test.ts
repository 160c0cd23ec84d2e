import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  histogramQuantile,
  LATENCY_BOUNDS_MS,
  MAX_TRACKED,
  TRAFFIC_BUCKET_MS,
  TRAFFIC_BUCKETS,
  TrafficCounters,
} from "./traffic.ts";

const WINDOW_MS = TRAFFIC_BUCKET_MS * TRAFFIC_BUCKETS;
const served = (endpoint: string, status = 200, durationMs = 10, tries = 1, pool = "p") => ({
  pool,
  endpoint,
  status,
  durationMs,
  tries,
});

describe("TrafficCounters", () => {
  it("counts requests, status classes, retries and latency per endpoint, bucket by bucket", () => {
    const t = new TrafficCounters();
    const start = 1_000_000 * TRAFFIC_BUCKET_MS;
    t.record("shop", "web", served("a", 200, 4), start);
    t.record("shop", "web", served("a", 503, 400, 3), start + 1);
    t.record("shop", "web", served("b", 302, 1), start + TRAFFIC_BUCKET_MS);
    t.record("shop", "web", undefined, start + 2); // answered by the worker itself
    t.recordFailedTry("p", "c", start + 3); // refused: the request went on to "a"

    const summary = t.summary(start + TRAFFIC_BUCKET_MS);
    const a = summary.endpoints.find((e) => e.endpoint === "a");
    expect(a?.requests.slice(-2)).toEqual([2, 0]);
    expect(a?.totals).toEqual({
      requests: 2,
      status: { "2xx": 1, "3xx": 0, "4xx": 0, "5xx": 1 },
      retries: 2,
      failedTries: 0,
      p50Ms: 5,
      p99Ms: 500,
    });
    expect(a?.p99Ms.slice(-2)).toEqual([500, null]);
    const c = summary.endpoints.find((e) => e.endpoint === "c");
    expect(c?.totals).toMatchObject({ requests: 0, failedTries: 1, p50Ms: null });
    expect(summary.rules).toEqual([{ route: "shop", rule: "web", observed: { p: 3 } }]);
    expect(summary.newestBucketAt).toBe(start + TRAFFIC_BUCKET_MS);
  });

  it("counts exactly the requests of the last five minutes, whatever their times (property)", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            at: fc.integer({ min: 0, max: 3 * WINDOW_MS }),
            id: fc.constantFrom("a", "b"),
          }),
          {
            maxLength: 200,
          },
        ),
        fc.integer({ min: 0, max: 3 * WINDOW_MS }),
        (requests, extra) => {
          const t = new TrafficCounters();
          const sorted = [...requests].sort((x, y) => x.at - y.at);
          for (const r of sorted) t.record("r", "0", served(r.id), r.at);
          const now = (sorted.at(-1)?.at ?? 0) + (extra % TRAFFIC_BUCKET_MS);
          const firstBucket =
            (Math.floor(now / TRAFFIC_BUCKET_MS) - TRAFFIC_BUCKETS + 1) * TRAFFIC_BUCKET_MS;
          const expected = sorted.filter((r) => r.at >= firstBucket).length;
          const summary = t.summary(now);
          const counted = summary.endpoints.reduce((n, e) => n + e.totals.requests, 0);
          expect(counted).toBe(expected);
          expect(summary.rules[0]?.observed.p ?? 0).toBe(expected);
        },
      ),
    );
  });

  it("counts requests answered without a route, in the same buckets", () => {
    const t = new TrafficCounters();
    t.recordUnrouted(0);
    t.recordUnrouted(TRAFFIC_BUCKET_MS);
    t.recordUnrouted(TRAFFIC_BUCKET_MS + 1);
    const later = t.summary(TRAFFIC_BUCKET_MS);
    expect(later.unrouted.slice(-2)).toEqual([1, 2]);
    expect(later.unrouted).toHaveLength(TRAFFIC_BUCKETS);
    // Five minutes on, all of it has left the window.
    expect(
      t.summary(TRAFFIC_BUCKET_MS * (TRAFFIC_BUCKETS + 2)).unrouted.every((n) => n === 0),
    ).toBe(true);
  });

  it("follows at most MAX_TRACKED endpoints and rules, and says so", () => {
    const t = new TrafficCounters();
    for (let i = 0; i < MAX_TRACKED + 5; i++) t.record("r", "0", served(`e${i}`), 0);
    const summary = t.summary(0);
    expect(summary.truncated).toBe(true);
    expect(summary.endpoints.length).toBe(MAX_TRACKED - 1); // one slot went to the rule
  });
});

describe("histogramQuantile", () => {
  it("is monotone in q and returns a bucket bound (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.nat({ max: 50 }), {
          minLength: LATENCY_BOUNDS_MS.length + 1,
          maxLength: LATENCY_BOUNDS_MS.length + 1,
        }),
        fc.double({ min: 0.01, max: 1, noNaN: true }),
        fc.double({ min: 0.01, max: 1, noNaN: true }),
        (counts, q1, q2) => {
          const [lo, hi] = q1 <= q2 ? [q1, q2] : [q2, q1];
          const a = histogramQuantile(counts, lo);
          const b = histogramQuantile(counts, hi);
          if (counts.every((c) => c === 0)) return expect([a, b]).toEqual([null, null]);
          expect(a as number).toBeLessThanOrEqual(b as number);
          expect(LATENCY_BOUNDS_MS).toContain(a);
        },
      ),
    );
  });
});
