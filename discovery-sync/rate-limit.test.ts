import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  BACKOFF_CAP_MS,
  backoffMs,
  KeyWriteLimiter,
  RETRY_AFTER_CAP_MS,
  retryAfterMs,
  TokenBucket,
} from "./rate-limit.ts";

describe("TokenBucket", () => {
  it("never lets more than burst + rate × elapsed requests through, whatever the timing", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10 }),
        fc.integer({ min: 1, max: 20 }),
        fc.array(fc.integer({ min: 0, max: 2_000 }), { minLength: 1, maxLength: 300 }),
        (rate, burst, gaps) => {
          const bucket = new TokenBucket(rate, burst, 0);
          let now = 0;
          let taken = 0;
          for (const gap of gaps) {
            now += gap;
            if (bucket.take(now) === 0) taken++;
            expect(taken).toBeLessThanOrEqual(burst + (rate * now) / 1000 + 1e-9);
          }
        },
      ),
    );
  });

  it("says how long to wait, and that wait is enough", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10 }),
        fc.integer({ min: 1, max: 5 }),
        (rate, burst) => {
          const bucket = new TokenBucket(rate, burst, 0);
          for (let i = 0; i < burst; i++) expect(bucket.take(0)).toBe(0);
          const wait = bucket.take(0);
          expect(wait).toBeGreaterThan(0);
          expect(bucket.take(wait)).toBe(0);
        },
      ),
    );
  });

  it("spends nothing after a 429 until it refills", () => {
    const bucket = new TokenBucket(2, 10, 0);
    bucket.drain(0);
    expect(bucket.take(0)).toBe(500);
    expect(bucket.take(500)).toBe(0);
  });
});

describe("backoffMs", () => {
  it("grows exponentially from 1 s to a 60 s cap, half fixed and half jitter", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.double({ min: 0, max: 0.999999, noNaN: true }),
        (attempt, random) => {
          const ceiling = Math.min(BACKOFF_CAP_MS, 1000 * 2 ** (attempt - 1));
          const delay = backoffMs(attempt, random);
          expect(delay).toBeGreaterThanOrEqual(ceiling / 2);
          expect(delay).toBeLessThanOrEqual(ceiling);
        },
      ),
    );
    expect([1, 2, 3, 7, 30].map((a) => backoffMs(a, 0))).toEqual([500, 1000, 2000, 30_000, 30_000]);
  });
});

describe("retryAfterMs", () => {
  it("reads seconds or an HTTP date, and caps the wait at the API's own block", () => {
    expect(retryAfterMs("2", 0)).toBe(2_000);
    expect(retryAfterMs("86400", 0)).toBe(RETRY_AFTER_CAP_MS);
    expect(retryAfterMs(new Date(10_000).toUTCString(), 4_000)).toBe(6_000);
    expect(retryAfterMs(null, 0)).toBeUndefined();
    expect(retryAfterMs("soon", 0)).toBeUndefined();
  });
});

describe("KeyWriteLimiter", () => {
  it("allows a key again one second after its last write, and forgets old keys", () => {
    const limiter = new KeyWriteLimiter();
    expect(limiter.nextAllowed("k")).toBe(0);
    limiter.written("k", 5_000);
    expect(limiter.nextAllowed("k")).toBe(6_000);
    limiter.prune(6_001);
    expect(limiter.nextAllowed("k")).toBe(0);
  });
});
