import { describe, expect, it, vi } from "vitest";
import type { Echo } from "../../local/backends.ts";
import { healthKey } from "../../worker/core/health.ts";
import {
  backends,
  catchAll,
  harness,
  hits,
  pool,
  putRoutes,
  webSocketRoundTrip,
} from "./harness.ts";

const b = backends();

/** A routes document with one rule over inline pools, with extra rule fields. */
function ruleDoc(rule: Record<string, unknown>, pools: Record<string, unknown>) {
  return {
    version: 1,
    routes: [{ name: "r", rules: [{ backendRefs: [{ pool: "p" }], ...rule }] }],
    pools,
  };
}

describe("retries against backends that fail in real ways", () => {
  it("tells the client why a retry was skipped only with DEBUG_HEADERS; the log always says", async () => {
    await putRoutes(ruleDoc({ retry: { attempts: 2 } }, { p: pool(b.reset, b.a) }));
    const h = harness({ env: { DEBUG_HEADERS: undefined } });
    const response = await h.fetch("http://x.test/orders", { method: "POST", body: "order" });
    expect(response.status).toBe(503);
    expect(response.headers.has("x-switchyard-retry-skipped")).toBe(false);
    expect(h.logs).toContainEqual({
      level: "warn",
      message: "the backend could not be reached",
      fields: {
        error: "unreachable",
        route: "r",
        requestId: response.headers.get("x-request-id"),
        retrySkipped: "not-idempotent",
      },
    });
  });

  it("retries an idempotent request once after a refused connection, by default", async () => {
    await putRoutes(catchAll([{ pool: "p" }], { p: pool(b.closed, b.a) }));
    const h = harness();
    expect(await h.backendOf("http://x.test/")).toBe("a");
  });

  it("answers 503 with the skip reason when a POST without Idempotency-Key hits a reset", async () => {
    await putRoutes(ruleDoc({ retry: { attempts: 2 } }, { p: pool(b.reset, b.a) }));
    const response = await harness().fetch("http://x.test/orders", {
      method: "POST",
      body: "order",
    });
    expect(response.status).toBe(503);
    expect(response.headers.get("x-switchyard-retry-skipped")).toBe("not-idempotent");
    expect(await response.json()).toEqual({
      error: "unreachable",
      route: "r",
      message: "the backend could not be reached",
      requestId: response.headers.get("x-request-id"),
    });
  });

  it("retries a POST with Idempotency-Key elsewhere, on a rule that honours it, and replays its body", async () => {
    await putRoutes(
      ruleDoc({ retry: { attempts: 2, idempotencyKey: "Honor" } }, { p: pool(b.reset, b.a) }),
    );
    const response = await harness().fetch("http://x.test/orders", {
      method: "POST",
      headers: { "idempotency-key": "k-1", "content-type": "text/plain" },
      body: "order #1",
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ backend: "a", method: "POST", body: "order #1" });
  });

  it("streams a body over the buffer limit once and does not retry it", async () => {
    await putRoutes(
      ruleDoc({ retry: { attempts: 2, bodyBufferBytes: 1024 } }, { p: pool(b.closed, b.a) }),
    );
    const h = harness();
    const big = await h.fetch("http://x.test/upload", { method: "PUT", body: "x".repeat(4096) });
    expect(big.status).toBe(503);
    expect(big.headers.get("x-switchyard-retry-skipped")).toBe("body-not-replayable");
    const small = await h.fetch("http://x.test/upload", { method: "PUT", body: "y".repeat(1000) });
    expect(small.status).toBe(200);
    expect(((await small.json()) as Echo).body).toBe("y".repeat(1000));
  });

  it("streams a chunked body over the limit through whole", async () => {
    await putRoutes(ruleDoc({ retry: { attempts: 2, bodyBufferBytes: 1024 } }, { p: pool(b.a) }));
    const chunk = new TextEncoder().encode("z".repeat(700));
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ === 5) controller.close();
        else controller.enqueue(chunk);
      },
    });
    const response = await harness().fetch("http://x.test/upload", { method: "PUT", body });
    expect(((await response.json()) as Echo).body).toBe("z".repeat(3500));
  });

  it("retries listed statuses and passes unlisted ones through as they came", async () => {
    await putRoutes(
      ruleDoc({ retry: { attempts: 1, codes: [503] } }, { p: pool(b.unavailable, b.a) }),
    );
    expect(await harness().backendOf("http://x.test/")).toBe("a");
    await putRoutes(catchAll([{ pool: "p" }], { p: pool(b.unavailable) }));
    const passed = await harness().fetch("http://x.test/");
    expect(passed.status).toBe(503);
    expect(passed.headers.get("x-backend")).toBe("unavailable");
    expect(await passed.text()).toBe("unavailable is unavailable");
  });

  it("tries the only endpoint of a pool again, after a backoff, until attempts run out", async () => {
    await putRoutes(ruleDoc({ retry: { attempts: 3, codes: [503] } }, { p: pool(b.unavailable) }));
    const before = await hits(b.unavailable);
    const response = await harness().fetch("http://x.test/");
    expect(response.status).toBe(503);
    expect(response.headers.get("x-switchyard-retry-skipped")).toBe("attempts-exhausted");
    expect((await hits(b.unavailable)) - before).toBe(4);
  });

  it("gives up after attempts retries", async () => {
    await putRoutes(
      ruleDoc({ retry: { attempts: 1, codes: [503] } }, { p: pool(b.unavailable, b.closed, b.a) }),
    );
    const response = await harness().fetch("http://x.test/");
    expect(response.status).toBe(503); // the retry went to the closed port; no third try
    expect(response.headers.get("x-switchyard-retry-skipped")).toBe("attempts-exhausted");
  });
});

describe("timeouts", () => {
  it("bounds each try by backendRequest: a hanging backend is left for the next", async () => {
    await putRoutes(
      ruleDoc(
        { timeouts: { backendRequest: "200ms" }, retry: { attempts: 1 } },
        { p: pool(b.hang, b.a) },
      ),
    );
    expect(await harness().backendOf("http://x.test/")).toBe("a");
  });

  it("answers 504 with a JSON body when the only backend hangs", async () => {
    await putRoutes(ruleDoc({ timeouts: { backendRequest: "200ms" } }, { p: pool(b.hang) }));
    const response = await harness().fetch("http://x.test/");
    expect(response.status).toBe(504);
    expect(await response.json()).toEqual({
      error: "timeout",
      route: "r",
      message: "the backend did not answer in time",
      requestId: response.headers.get("x-request-id"),
    });
  });

  it("bounds the whole exchange by request, retries included", async () => {
    await putRoutes(
      ruleDoc(
        { timeouts: { request: "400ms" }, retry: { attempts: 3 } },
        { p: pool(b.slow, b.hang) },
      ),
    );
    const response = await harness().fetch("http://x.test/");
    expect(response.status).toBe(504);
    expect(await response.json()).toEqual({
      error: "timeout",
      route: "r",
      message: "the backend did not answer in time",
      requestId: response.headers.get("x-request-id"),
    });
  });

  it("lets a slow backend answer within the timeouts", async () => {
    await putRoutes(
      ruleDoc({ timeouts: { request: "5s", backendRequest: "4s" } }, { p: pool(b.slow) }),
    );
    expect(await harness().backendOf("http://x.test/")).toBe("slow");
  });

  it.each([{ backendRequest: "300ms" }, { request: "300ms" }])(
    "bounds the body too: %j ends a body that stops coming",
    async (timeouts) => {
      await putRoutes(ruleDoc({ timeouts }, { p: pool(b.stall) }));
      const h = harness();
      const response = await h.fetch("http://x.test/");
      expect(response.status).toBe(200);
      // Without the bound this read waits for the test's own timeout.
      await expect(response.text()).rejects.toThrow();
      // The operator is told, with the request's id: the client saw a 200 and a short body.
      await vi.waitFor(() =>
        expect(h.logs).toContainEqual(
          expect.objectContaining({
            level: "warn",
            message: "response body cut: the timeout expired while it was coming",
            fields: expect.objectContaining({ route: "r", timeout: "300ms" }),
          }),
        ),
      );
    },
  );

  it("leaves a WebSocket alone once it is open", async () => {
    await putRoutes(ruleDoc({ timeouts: { backendRequest: "200ms" } }, { p: pool(b.a) }));
    const response = await harness().fetch("http://x.test/ws", {
      headers: { upgrade: "websocket" },
    });
    // Past the timeout, the socket still carries messages both ways.
    expect(await webSocketRoundTrip(response, 400)).toBe("a: hello");
  });

  it('takes "0s" as no timeout, as Gateway API says, not as an instant one', async () => {
    await putRoutes(
      ruleDoc({ timeouts: { request: "0s", backendRequest: "0s" } }, { p: pool(b.slow) }),
    );
    expect(await harness().backendOf("http://x.test/")).toBe("slow");
  });
});

describe("a socket reset in the middle of a response", () => {
  it("reaches the client as a failed body, never as a short one", async () => {
    await putRoutes(catchAll([{ pool: "p" }], { p: pool(b.midbody) }));
    const response = await harness().fetch("http://x.test/");
    expect(response.status).toBe(200);
    await expect(response.text()).rejects.toThrow();
  });
});

describe("passive health", () => {
  it("ejects a dead endpoint: of 1,000 GETs none fails, and the dead one sees only its 10 failures", async () => {
    await putRoutes(catchAll([{ pool: "p" }], { p: pool(b.a, b.reset, b.b) }));
    const h = harness();
    const before = await hits(b.reset);
    const answers: Record<string, number> = {};
    for (let i = 0; i < 1000; i++) {
      const backend = await h.backendOf("http://x.test/");
      answers[backend] = (answers[backend] ?? 0) + 1;
      h.advance(10); // 10 s in all: within the first ejection, 30 s
    }
    expect(Object.keys(answers).sort()).toEqual(["a", "b"]);
    expect(answers.a! + answers.b!).toBe(1000);
    expect(Math.abs(answers.a! - answers.b!)).toBeLessThanOrEqual(10);
    expect((await hits(b.reset)) - before).toBe(10);
    const dead = h.store.snapshot!.pool("p")!.endpoints[1]!;
    // Its tenth failure (the minimum volume, all failed) came with the 29th request (every third
    // went to it): out for 30 s.
    expect(h.state.health.view(healthKey("p", dead.id), 1_010_000)).toMatchObject({
      timesEjected: 1,
      ejectedUntil: 1_000_280 + 30_000,
    });
  });

  it("never ejects for a status the rule lists for retries only: a client cannot empty a shared pool", async () => {
    // Route "r" retries 503s; the same pool serves another route. Requests for a path that
    // answers 503 (this backend answers 503 to everything) must not take the pool down.
    await putRoutes(
      ruleDoc({ retry: { attempts: 1, codes: [503] } }, { p: pool(b.unavailable, b.c, b.d) }),
    );
    const h = harness();
    for (let i = 0; i < 40; i++) await h.fetch("http://x.test/attack");
    const unavailable = h.store.snapshot!.pool("p")!.endpoints[0]!;
    expect(h.state.health.view(healthKey("p", unavailable.id), h.now())).toMatchObject({
      timesEjected: 0,
      ejectedUntil: undefined,
    });
  });

  it("lets an ejected endpoint back by itself after 30 s", async () => {
    await putRoutes(
      ruleDoc(
        { retry: { attempts: 1, codes: [503] }, passiveHealth: { failureCodes: [503] } },
        { p: pool(b.unavailable, b.c, b.d) },
      ),
    );
    const h = harness();
    for (let i = 0; i < 30; i++) await h.backendOf("http://x.test/");
    const before = await hits(b.unavailable);
    for (let i = 0; i < 30; i++)
      expect(await h.backendOf("http://x.test/")).not.toBe("unavailable");
    expect(await hits(b.unavailable)).toBe(before); // ejected: no traffic at all
    h.advance(30_000);
    for (let i = 0; i < 3; i++) await h.backendOf("http://x.test/");
    expect(await hits(b.unavailable)).toBeGreaterThan(before);
  });

  it("fails a dead primary pool over to a priority-1 pool", async () => {
    await putRoutes({
      version: 1,
      routes: [
        {
          name: "r",
          rules: [
            {
              backendRefs: [{ pool: "primary" }, { pool: "dr", priority: 1 }],
              retry: { attempts: 2 },
            },
          ],
        },
      ],
      pools: { primary: pool(b.closed, b.reset), dr: pool(b.c) },
    });
    const h = harness();
    // Each request tries the primary endpoints before dr; once each has failed 10 times both are down (the
    // retry budget may turn some of those first requests into 503s: the pool is broken).
    for (let i = 0; i < 30; i++) await h.fetch("http://x.test/");
    const seen = [];
    for (let i = 0; i < 20; i++) seen.push(await h.backendOf("http://x.test/"));
    expect(new Set(seen)).toEqual(new Set(["c"]));
    const before = await hits(b.reset);
    for (let i = 0; i < 20; i++) await h.backendOf("http://x.test/");
    expect(await hits(b.reset)).toBe(before); // every primary endpoint is down: no new traffic
  });
});

describe("a client that uploads slowly", () => {
  /** A body that sends a first chunk, then nothing for `stallMs`, then the rest. */
  const stalling = (stallMs: number) =>
    new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode("first part, "));
        setTimeout(() => {
          controller.enqueue(new TextEncoder().encode("then the rest"));
          controller.close();
        }, stallMs);
      },
    });

  it("gets 408 and never counts against the endpoint, even aimed at one endpoint twelve times", async () => {
    await putRoutes(ruleDoc({ timeouts: { backendRequest: "300ms" } }, { p: pool(b.a, b.b) }));
    const h = harness();
    for (let i = 0; i < 12; i++) {
      const response = await h.fetch("http://x.test/upload", {
        method: "POST",
        body: stalling(600),
        duplex: "half",
      } as RequestInit);
      expect(response.status).toBe(408);
      expect(await response.json()).toMatchObject({ error: "request_timeout" });
    }
    expect(h.state.health.keepsAny).toBe(false); // no failure on record for either endpoint
    expect(h.logs.map((l) => l.fields?.error)).toContain("client-timeout");
    // Both endpoints still take traffic.
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) seen.add(await h.backendOf("http://x.test/"));
    expect(seen).toEqual(new Set(["a", "b"]));
  });

  it("gets 408 at timeouts.request when a body that may be retried stalls while it is buffered", async () => {
    await putRoutes(ruleDoc({ timeouts: { request: "500ms" } }, { p: pool(b.a) }));
    const h = harness();
    const started = Date.now();
    const response = await h.fetch("http://x.test/upload", {
      method: "PUT", // idempotent: its body is buffered to be sent again
      body: stalling(3_000),
      duplex: "half",
    } as RequestInit);
    expect(response.status).toBe(408);
    expect(Date.now() - started).toBeLessThan(2_500);
    expect(h.state.buffers.inUse).toBe(0);
    expect(h.state.health.keepsAny).toBe(false);
  });

  it("is logged as a client that went away, not as the worker's error, when its body fails mid-way", async () => {
    await putRoutes(ruleDoc({ retry: { attempts: 1 } }, { p: pool(b.a) }));
    const h = harness();
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 2) controller.enqueue(new Uint8Array(1_000));
        else controller.error(new Error("Network connection lost."));
      },
    });
    const response = await h.fetch("http://x.test/upload", {
      method: "PUT",
      body,
      duplex: "half",
    } as RequestInit);
    expect(response.status).toBe(499);
    expect(h.logs.some((l) => l.message === "unhandled error")).toBe(false);
    expect(h.logs).toContainEqual(
      expect.objectContaining({
        level: "info",
        fields: expect.objectContaining({ error: "client-closed" }),
      }),
    );
    expect(h.state.buffers.inUse).toBe(0);
  });

  it("is served when its body arrives within the timeout", async () => {
    await putRoutes(ruleDoc({ timeouts: { backendRequest: "2s" } }, { p: pool(b.a) }));
    const response = await harness().fetch("http://x.test/upload", {
      method: "POST",
      body: stalling(100),
      duplex: "half",
    } as RequestInit);
    expect(((await response.json()) as Echo).body).toBe("first part, then the rest");
  });
});
