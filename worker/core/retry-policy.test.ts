import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { routesDoc } from "../../test/fixtures/worker-rules.ts";
import {
  backoffDelay,
  RetryBudget,
  RetryBudgets,
  type RetryQuestion,
  repeatDelay,
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

describe("repeatDelay", () => {
  it("without a backoff waits a random part of 25 ms × 2^(n-1), at most 250 ms: four repeats take under 375 ms", () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0, max: 0.999, noNaN: true }), { minLength: 4, maxLength: 4 }),
        (randoms) => {
          const waits = randoms.map((random, i) => repeatDelay(undefined, i + 1, random));
          waits.forEach((wait, i) => {
            expect(wait).toBeGreaterThanOrEqual(0);
            expect(wait).toBeLessThan(Math.min(25 * 2 ** i, 250));
          });
          expect(waits.reduce((a, b) => a + b, 0)).toBeLessThan(375);
        },
      ),
    );
    expect(repeatDelay(undefined, 10, 0.999)).toBeLessThan(250);
  });

  it("takes the rule's backoff when it sets one", () => {
    expect(repeatDelay(100, 2, 0.5)).toBe(backoffDelay(100, 2, 0.5));
  });
});

const acquired = (charge: number | undefined) => charge !== undefined;

describe("RetryBudget", () => {
  it("refunds retries that rescue: one bad endpoint of three is retried every time it fails", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 500 }), fc.integer({ min: 1, max: 50 }), (n, wave) => {
        const budget = new RetryBudget();
        let granted = 0;
        // `wave` requests at once, a third of them failing their first try and rescued by a retry.
        for (let i = 0; i < n; i += wave) {
          const now = i * 10;
          const size = Math.min(wave, n - i);
          for (let j = 0; j < size; j++) budget.recordRequest(now);
          const charges = [];
          for (let j = 0; j < Math.ceil(size / 3); j++) charges.push(budget.tryAcquire(now));
          granted += charges.filter(acquired).length;
          for (const charge of charges) if (charge !== undefined) budget.settle(charge, true);
        }
        let wanted = 0;
        for (let i = 0; i < n; i += wave) wanted += Math.ceil(Math.min(wave, n - i) / 3);
        expect(granted).toBe(wanted);
      }),
    );
  });

  it("bounds retries that fail to 20 % of the requests plus the reserve, one at a time or at once", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 300 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 100 }),
        fc.integer({ min: 0, max: 100 }),
        (n, attempts, concurrency, stepMs) => {
          const budget = new RetryBudget();
          let granted = 0;
          // A dead pool: every retry fails. Requests arrive `concurrency` at a time.
          let now = 0;
          for (let i = 0; i < n; i++) {
            now = Math.floor(i / concurrency) * stepMs;
            budget.recordRequest(now);
            for (let r = 0; r < attempts; r++) {
              const charge = budget.tryAcquire(now);
              if (charge === undefined) break;
              granted++;
              budget.settle(charge, false);
            }
          }
          // The reserve: 20 at first, then 2 a second.
          expect(granted).toBeLessThanOrEqual(Math.floor(0.2 * n + 20 + (2 * now) / 1000));
        },
      ),
    );
  });

  it("lets retries back within a second of running out: the reserve refills at 2 a second", () => {
    const budget = new RetryBudget();
    for (let i = 0; i < 10; i++) budget.recordRequest(0);
    let granted = 0;
    for (let charge = budget.tryAcquire(0); charge !== undefined; charge = budget.tryAcquire(0)) {
      granted++;
      budget.settle(charge, false);
    }
    expect(granted).toBe(22); // 20 % of 10, and the reserve of 20
    expect(acquired(budget.tryAcquire(400))).toBe(false);
    expect(acquired(budget.tryAcquire(500))).toBe(true); // one token back after half a second
    expect(budget.status(500)).toMatchObject({ requests: 10, failedRetries: 2, reserve: 0 });
  });

  it("does not refund a charge whose second has left the window", () => {
    const budget = new RetryBudget();
    budget.recordRequest(0);
    for (let i = 0; i < 5; i++) budget.recordRequest(0);
    const old = budget.tryAcquire(0) as number;
    expect(old).toBe(0); // charged to second 0's share
    for (let i = 0; i < 5; i++) budget.recordRequest(12_000);
    const fresh = budget.tryAcquire(12_000);
    expect(fresh).toBe(12);
    budget.settle(old, true); // second 0 is gone: second 12's charge must stay
    expect(budget.status(12_000)).toMatchObject({ failedRetries: 1, inFlight: 1 });
  });
});

describe("RetryBudgets", () => {
  it("keeps one budget per pool: a broken pool spends only its own", () => {
    const budgets = new RetryBudgets();
    const broken = budgets.of("broken", 0);
    while (broken.tryAcquire(0) !== undefined);
    expect(acquired(budgets.of("healthy", 0).tryAcquire(0))).toBe(true);
    expect(budgets.of("broken", 0)).toBe(broken);
    expect(acquired(broken.tryAcquire(0))).toBe(false);
    expect(Object.keys(budgets.status(0))).toEqual(["broken", "healthy"]);
  });

  it("forgets idle pools once it holds maxPools of them", () => {
    const budgets = new RetryBudgets({}, 2);
    budgets.of("a", 0).recordRequest(0);
    budgets.of("b", 0);
    budgets.of("c", 0);
    expect(Object.keys(budgets.status(0))).toEqual(["a", "c"]);
  });

  it("names a pool __proto__ as any other", () => {
    const budgets = new RetryBudgets();
    budgets.of("__proto__", 0).recordRequest(0);
    expect(Object.hasOwn(budgets.status(0), "__proto__")).toBe(true);
  });
});
