import { describe, expect, it } from "vitest";
import { backends, harness, hits, pool, putRoutes } from "./harness.ts";

/**
 * Retries and their budget against real loopback backends: a sick endpoint among healthy ones
 * is retried on every failure, from the first request on, one request at a time or many at
 * once; a pool whose every endpoint fails gets about one extra try per request, not `attempts`.
 */

const b = backends();

function ruleDoc(rule: Record<string, unknown>, endpoints: string[]) {
  return {
    version: 1,
    routes: [{ name: "r", rules: [{ backendRefs: [{ pool: "p" }], ...rule }] }],
    pools: { p: pool(...endpoints) },
  };
}

type Harness = ReturnType<typeof harness>;

/** `n` requests, `concurrency` at a time: their statuses and retry-skipped headers. */
async function send(
  h: Harness,
  n: number,
  concurrency: number,
  init: (i: number) => RequestInit = () => ({}),
): Promise<{ statuses: number[]; skipped: (string | null)[] }> {
  const statuses: number[] = [];
  const skipped: (string | null)[] = [];
  for (let i = 0; i < n; i += concurrency) {
    const wave = Array.from({ length: Math.min(concurrency, n - i) }, (_, j) =>
      h.fetch(`http://x.test/item/${i + j}`, init(i + j)),
    );
    for (const response of await Promise.all(wave)) {
      statuses.push(response.status);
      skipped.push(response.headers.get("x-switchyard-retry-skipped"));
      await response.body?.cancel();
    }
  }
  return { statuses, skipped };
}

const SICK = [
  { name: "resets every connection", url: () => b.reset, rule: { retry: { attempts: 2 } } },
  { name: "refuses connections", url: () => b.closed, rule: { retry: { attempts: 2 } } },
  {
    name: "hangs past backendRequest",
    url: () => b.hang,
    rule: {
      retry: { attempts: 2 },
      timeouts: { backendRequest: "500ms", request: "5s" },
    },
  },
  {
    name: "answers a retried code",
    url: () => b.unavailable,
    rule: { retry: { attempts: 2, codes: [503] } },
  },
];

describe("one sick endpoint of three: every request is answered by a healthy one", () => {
  for (const sick of SICK) {
    for (const [n, concurrency] of [
      [20, 1],
      [50, 50],
    ] as const) {
      it(`when it ${sick.name}: ${n} GETs, ${concurrency} at a time`, async () => {
        await putRoutes(ruleDoc(sick.rule, [sick.url(), b.a, b.b]));
        const { statuses, skipped } = await send(harness(), n, concurrency);
        expect(statuses).toEqual(Array(n).fill(200));
        expect(skipped.filter((s) => s !== null)).toEqual([]);
      });
    }
  }

  it("and POSTs with Idempotency-Key on a rule that honours them, one at a time and 50 at once", async () => {
    await putRoutes(
      ruleDoc({ retry: { codes: [503], attempts: 2, idempotencyKey: "Honor" } }, [
        b.unavailable,
        b.a,
      ]),
    );
    const post = (i: number): RequestInit => ({
      method: "POST",
      body: `order ${i}`,
      headers: { "idempotency-key": `key-${i}` },
    });
    const h = harness();
    expect((await send(h, 10, 1, post)).statuses).toEqual(Array(10).fill(200));
    expect((await send(h, 50, 50, post)).statuses).toEqual(Array(50).fill(200));
  });
});

describe("a pool whose every endpoint fails", () => {
  // Both endpoints answer 503 (the flaky one fails 1,000 times for the request id "dead").
  const dead = () =>
    ruleDoc({ retry: { attempts: 5, codes: [503] }, passiveHealth: { failureCodes: [503] } }, [
      b.unavailable,
      b.flaky,
    ]);
  const deadRequest = "http://x.test/?uuid=dead&succeedAfter=1000&responseCode=503";
  const triesSeen = async () => (await hits(b.unavailable)) + (await hits(b.flaky));

  for (const concurrency of [1, 50]) {
    it(`gets about one extra try per request, not five: 40 requests, ${concurrency} at a time`, async () => {
      await putRoutes(dead());
      const h = harness();
      const before = await triesSeen();
      const skipped: (string | null)[] = [];
      for (let i = 0; i < 40; i += concurrency) {
        const wave = await Promise.all(
          Array.from({ length: Math.min(concurrency, 40 - i) }, () => h.fetch(deadRequest)),
        );
        for (const response of wave) {
          expect(response.status).toBe(503);
          skipped.push(response.headers.get("x-switchyard-retry-skipped"));
        }
      }
      const extra = (await triesSeen()) - before - 40;
      // The share (20 % of 40) and the reserve (20, and 2 a second of the harness's clock).
      expect(extra).toBeGreaterThan(0);
      expect(extra).toBeLessThanOrEqual(28);
      expect(skipped).toContain("budget-exhausted");
      expect(h.logs).toContainEqual(
        expect.objectContaining({
          fields: expect.objectContaining({ retrySkipped: "budget-exhausted" }),
        }),
      );
    });
  }

  it("gets retries back within seconds once an endpoint answers again", async () => {
    await putRoutes(dead());
    const h = harness({ refreshSeconds: 1 });
    for (let i = 0; i < 10; i++) await h.fetch(deadRequest);
    expect((await h.fetch(deadRequest)).headers.get("x-switchyard-retry-skipped")).toBe(
      "budget-exhausted",
    );
    // The pool recovers: one of its endpoints answers again. The first request past the
    // refresh time is served from the old pool and starts the reread.
    await putRoutes(ruleDoc({ retry: { attempts: 5, codes: [503] } }, [b.unavailable, b.a]));
    h.advance(1_000);
    await h.fetch(deadRequest);
    h.advance(1_000);
    // Half of these try the 503 endpoint first: each is retried, and each rescue is refunded.
    const { statuses } = await send(h, 10, 1);
    expect(statuses).toEqual(Array(10).fill(200));
  });

  it("does not spend the budget of another pool", async () => {
    await putRoutes({
      version: 1,
      routes: [
        {
          name: "r",
          hostnames: ["dead.test"],
          rules: [{ backendRefs: [{ pool: "dead" }], retry: { attempts: 5, codes: [503] } }],
        },
        {
          name: "s",
          hostnames: ["x.test"],
          rules: [{ backendRefs: [{ pool: "p" }], retry: { attempts: 2, codes: [503] } }],
        },
      ],
      pools: { dead: pool(b.unavailable), p: pool(b.unavailable, b.a) },
    });
    const h = harness();
    for (let i = 0; i < 20; i++) await h.fetch("http://dead.test/");
    expect((await h.fetch("http://dead.test/")).headers.get("x-switchyard-retry-skipped")).toBe(
      "budget-exhausted",
    );
    const { statuses } = await send(h, 10, 1);
    expect(statuses).toEqual(Array(10).fill(200));
  });
});

describe("hedging", () => {
  /** The flaky backend answering 200 after `delay`: a slow endpoint that does not fail. */
  const slowly = (delay: string) =>
    `?${new URLSearchParams({ uuid: crypto.randomUUID(), succeedAfter: "1", responseCode: "200", delayRetry: delay })}`;

  it("answers from another endpoint when the first has no headers after the hedge delay", async () => {
    await putRoutes(ruleDoc({ hedge: { delay: "100ms" } }, [b.flaky, b.a]));
    const h = harness();
    for (let i = 0; i < 6; i++) {
      const started = Date.now();
      // Every other request tries the slow endpoint first; the hedge to `a` wins.
      expect(await h.backendOf(`http://x.test/${slowly("2s")}`)).toBe("a");
      expect(Date.now() - started).toBeLessThan(1_500);
    }
  });

  it("never hedges a POST, even with an Idempotency-Key", async () => {
    await putRoutes(
      ruleDoc({ hedge: { delay: "100ms" }, retry: { idempotencyKey: "Honor" } }, [b.flaky]),
    );
    const response = await harness().fetch(`http://x.test/${slowly("300ms")}`, {
      method: "POST",
      body: "order",
      headers: { "idempotency-key": "k" },
    });
    expect(await response.text()).toBe("failing try 1"); // the slow endpoint's own answer
  });

  it("hedges at the pool's observed percentile once it has answers enough", async () => {
    const rule = { hedge: { delay: "5s", percentile: 90 } };
    await putRoutes(ruleDoc(rule, [b.a, b.b]));
    const h = harness({ refreshSeconds: 1 });
    for (let i = 0; i < 30; i++) await h.fetch("http://x.test/");
    // The same pool with a slow endpoint: its p90 of a few ms, not 5 s, decides.
    await putRoutes(ruleDoc(rule, [b.flaky, b.a]));
    h.advance(1_000);
    await h.fetch("http://x.test/");
    for (let i = 0; i < 4; i++)
      expect(await h.backendOf(`http://x.test/${slowly("1s")}`)).toBe("a");
  });

  it("charges hedges to the pool's budget and refunds those that win", async () => {
    await putRoutes(ruleDoc({ hedge: { delay: "50ms" } }, [b.flaky, b.a]));
    const h = harness();
    for (let i = 0; i < 4; i++) await h.fetch(`http://x.test/${slowly("400ms")}`);
    expect(h.state.budgets.status(h.now()).p).toMatchObject({ failedRetries: 0, inFlight: 0 });
  });
});
