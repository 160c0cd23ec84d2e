import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { routesDoc } from "../../test/fixtures/worker-rules.ts";
import {
  backoffDelay,
  RetryBudget,
  type RetryQuestion,
  retryDecision,
  retrySettings,
} from "./retry-policy.ts";

function settingsOf(retry?: unknown) {
  const doc = routesDoc({
    version: 1,
    routes: [{ name: "r", rules: [{ backendRefs: [{ pool: "p" }], ...(retry ? { retry } : {}) }] }],
  });
  return retrySettings(doc.routes[0]!.rules[0]!);
}

const base = (over: Partial<RetryQuestion>): RetryQuestion => ({
  outcome: { kind: "connection-failure" },
  settings: settingsOf(),
  retriesDone: 0,
  method: "GET",
  hasIdempotencyKey: false,
  bodyReplayable: true,
  ...over,
});

describe("retryDecision", () => {
  it("without a retry block retries an idempotent request once after a connection failure", () => {
    expect(retryDecision(base({}))).toEqual({ retry: true });
    expect(retryDecision(base({ retriesDone: 1 }))).toEqual({
      retry: false,
      reason: "attempts-exhausted",
    });
    expect(retryDecision(base({ outcome: { kind: "response", status: 503 } }))).toEqual({
      retry: false,
    });
  });

  it("retries listed statuses, timeouts and connection failures up to attempts", () => {
    const settings = settingsOf({ attempts: 2, codes: [503] });
    expect(retryDecision(base({ settings, outcome: { kind: "response", status: 503 } }))).toEqual({
      retry: true,
    });
    expect(retryDecision(base({ settings, outcome: { kind: "response", status: 500 } }))).toEqual({
      retry: false,
    });
    expect(retryDecision(base({ settings, outcome: { kind: "timeout" }, retriesDone: 1 }))).toEqual(
      { retry: true },
    );
    expect(retryDecision(base({ settings, retriesDone: 2 }))).toEqual({
      retry: false,
      reason: "attempts-exhausted",
    });
  });

  it("retries a POST only with an Idempotency-Key on a rule that honours it, and a body only when buffered", () => {
    expect(retryDecision(base({ method: "POST" }))).toEqual({
      retry: false,
      reason: "not-idempotent",
    });
    // A client's key alone is not enough: the rule must say its backend deduplicates.
    expect(retryDecision(base({ method: "POST", hasIdempotencyKey: true }))).toEqual({
      retry: false,
      reason: "not-idempotent",
    });
    const honoring = { ...base({}).settings, honorIdempotencyKey: true };
    expect(
      retryDecision(base({ method: "POST", hasIdempotencyKey: true, settings: honoring })),
    ).toEqual({ retry: true });
    expect(retryDecision(base({ method: "PUT", bodyReplayable: false }))).toEqual({
      retry: false,
      reason: "body-not-replayable",
    });
  });
});

describe("backoffDelay", () => {
  it("grows exponentially with jitter in [0.5, 1.5) and is capped", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 1, max: 10 }),
        fc.double({ min: 0, max: 0.999, noNaN: true }),
        (baseMs, retry, random) => {
          const delay = backoffDelay(baseMs, retry, random);
          const nominal = baseMs * 2 ** (retry - 1);
          expect(delay).toBeLessThanOrEqual(Math.min(nominal * 1.5, 10_000));
          expect(delay).toBeGreaterThanOrEqual(Math.min(nominal * 0.5, 10_000));
        },
      ),
    );
    expect(backoffDelay(undefined, 3, 0.5)).toBe(0);
  });
});

describe("RetryBudget", () => {
  it("bounds sequential retries too: one request at a time gets no more than the ratio and the floor", () => {
    const budget = new RetryBudget({ ratio: 0.2, minPerSecond: 1, windowMs: 10_000 });
    let granted = 0;
    for (let i = 0; i < 100; i++) {
      budget.recordRequest(i);
      if (budget.tryAcquire(i)) granted++;
      budget.release(); // each retry ends before the next request: never more than one in flight
    }
    expect(granted).toBe(30); // 20 % of 100, plus 1 a second over the 10 s window
  });

  it("allows retries up to 20 % of the last 10 s's requests plus the floor, whatever the concurrency", () => {
    const budget = new RetryBudget({ minPerSecond: 0 });
    for (let i = 0; i < 100; i++) budget.recordRequest(0);
    let granted = 0;
    while (budget.tryAcquire(500)) granted++;
    expect(granted).toBe(20);
    expect(budget.tryAcquire(10_999)).toBe(false); // the requests of second 0 still count
    for (let i = 0; i < granted; i++) budget.release();
    expect(budget.tryAcquire(11_000)).toBe(false); // second 0 left the window: nothing to spend
    expect(new RetryBudget({ minPerSecond: 1 }).tryAcquire(0)).toBe(true); // the floor: 10 in 10 s
  });

  it("never has more than maxInFlight retries at once", () => {
    const budget = new RetryBudget({ maxInFlight: 2, minPerSecond: 100 });
    expect([1, 2, 3].map(() => budget.tryAcquire(0))).toEqual([true, true, false]);
    budget.release();
    expect(budget.tryAcquire(0)).toBe(true);
  });
});
