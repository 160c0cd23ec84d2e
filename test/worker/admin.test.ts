import { describe, expect, it } from "vitest";
import type { Echo } from "../../local/backends.ts";
import { backends, catchAll, harness, pool, putCompiled, putRoutes } from "./harness.ts";

const b = backends();
const TOKEN = "admin-secret-of-at-least-32-characters";
const auth = { authorization: `Bearer ${TOKEN}` };

describe("admin API", () => {
  it("answers 401 without the bearer token or with a wrong one", async () => {
    await putRoutes(catchAll([{ pool: "p" }], { p: pool(b.a) }));
    const h = harness({ env: { ADMIN_TOKEN: TOKEN } });
    const attempts: Record<string, string>[] = [
      {},
      { authorization: "Bearer nope" },
      { authorization: TOKEN },
    ];
    for (const headers of attempts) {
      const response = await h.fetch("http://x.test/__switchyard/status", { headers });
      expect(response.status).toBe(401);
      expect(response.headers.get("www-authenticate")).toBe('Bearer realm="switchyard"');
    }
  });

  it("is off without ADMIN_TOKEN: its path is routed like any other", async () => {
    await putRoutes(catchAll([{ pool: "p" }], { p: pool(b.a) }));
    const response = await harness().fetch("http://x.test/__switchyard/status", { headers: auth });
    expect(await response.json()).toMatchObject({ backend: "a", path: "/__switchyard/status" });
  });

  it("reports the snapshot, the last load error, and reloads at once", async () => {
    await putRoutes(catchAll([{ pool: "p" }], { p: pool(b.a) }));
    const h = harness({ env: { ADMIN_TOKEN: TOKEN, ADMIN_PATH: "/_lb" } });
    await h.fetch("http://x.test/");
    const status = (await (
      await h.fetch("http://x.test/_lb/status", { headers: auth })
    ).json()) as Record<string, unknown>;
    expect(status).toMatchObject({
      lastError: null,
      ageSeconds: 0,
      routes: [{ name: "all", hostnames: [], rules: 1, filters: [] }],
      // Each pool's retry budget: its requests, and its reserve of 20 retries.
      retryBudgets: { p: { requests: 1, failedRetries: 0, reserve: 20, inFlight: 0 } },
    });
    expect(status.generation).toMatch(/^[0-9a-f]{14}$/);
    await putRoutes({ version: 1, routes: [{ name: "bad", rules: [] }] });
    const reloaded = (await (
      await h.fetch("http://x.test/_lb/reload", { method: "POST", headers: auth })
    ).json()) as { lastError: { message: string }; generation: string };
    expect(reloaded.lastError.message).toBe(
      "the routes document is invalid: routes[0].rules: must have at least one rule",
    );
    expect(reloaded.generation).toBe(status.generation);
    await putRoutes(catchAll([{ pool: "p" }], { p: pool(b.b) }));
    await h.fetch("http://x.test/_lb/reload", { method: "POST", headers: auth });
    expect(await h.backendOf("http://x.test/")).toBe("b");
  });

  it("lists the filter types each route uses, its rules' and its backendRefs'", async () => {
    await putRoutes({
      version: 1,
      routes: [
        {
          name: "shop",
          rules: [
            {
              filters: [{ type: "CORS", cors: { allowOrigins: ["https://a.example"] } }],
              backendRefs: [
                {
                  pool: "p",
                  filters: [
                    {
                      type: "RequestHeaderModifier",
                      requestHeaderModifier: { set: [{ name: "x-a", value: "1" }] },
                    },
                  ],
                },
              ],
            },
            { filters: [{ type: "RequestRedirect", requestRedirect: { hostname: "b.example" } }] },
          ],
        },
      ],
      pools: { p: pool(b.a) },
    });
    const h = harness({ env: { ADMIN_TOKEN: TOKEN } });
    const status = (await (
      await h.fetch("http://x.test/__switchyard/status", { headers: auth })
    ).json()) as { routes: unknown[] };
    expect(status.routes).toEqual([
      {
        name: "shop",
        hostnames: [],
        rules: 2,
        filters: ["CORS", "RequestHeaderModifier", "RequestRedirect"],
      },
    ]);
  });

  it("shows this isolate's traffic: per endpoint series, configured and observed split, ejections, generations", async () => {
    await putRoutes({
      version: 1,
      routes: [
        {
          name: "shop",
          rules: [
            {
              name: "web",
              backendRefs: [
                { pool: "main", weight: 3 },
                { pool: "canary", weight: 1 },
              ],
            },
          ],
        },
      ],
      pools: { main: pool(b.a, b.reset, b.b), canary: pool(b.c) },
    });
    const h = harness({ env: { ADMIN_TOKEN: TOKEN } });
    for (let i = 0; i < 40; i++) await h.fetch("http://x.test/");
    const body = (await (
      await h.fetch("http://x.test/__switchyard/traffic", { headers: auth })
    ).json()) as {
      scope: string;
      bucketSeconds: number;
      endpoints: {
        pool: string;
        url: string;
        requests: number[];
        totals: { requests: number; failedTries: number };
      }[];
      rules: {
        route: string;
        rule: string;
        configured: { pool: string; weight: number }[];
        observed: Record<string, number>;
      }[];
      ejections: { pool: string; endpoint: string; reason: string; until: string }[];
      generations: { generation: string }[];
    };
    expect(body.scope).toBe("this isolate");
    expect(body.bucketSeconds).toBe(10);
    expect(body.endpoints.reduce((n, e) => n + e.totals.requests, 0)).toBe(40);
    expect(body.endpoints.map((e) => e.url).sort()).toEqual([b.a, b.b, b.c, b.reset].sort());
    const reset = body.endpoints.find((e) => e.url === b.reset);
    expect(reset?.totals).toMatchObject({ requests: 0, failedTries: 10 });
    expect(body.endpoints.every((e) => e.requests.length === 30)).toBe(true);
    const [rule] = body.rules;
    expect(rule).toMatchObject({
      route: "shop",
      rule: "web",
      configured: [
        { pool: "main", weight: 3 },
        { pool: "canary", weight: 1 },
      ],
    });
    expect((rule?.observed.main ?? 0) + (rule?.observed.canary ?? 0)).toBe(40);
    // 3:1 by weight; a retry after the reset endpoint may land in either pool.
    expect(rule?.observed.main).toBeGreaterThanOrEqual(28);
    expect(rule?.observed.main).toBeLessThanOrEqual(32);
    expect(body.ejections).toEqual([
      expect.objectContaining({
        pool: "main",
        reason: expect.stringMatching(
          /^\d+ of \d+ requests failed within 10 s; last: connection-failure$/,
        ),
      }),
    ]);
    expect(body.generations).toEqual([
      expect.objectContaining({ generation: h.store.snapshot?.generation, routes: 1, pools: 2 }),
    ]);
  });

  it("counts requests that matched no route in this isolate's traffic", async () => {
    await putRoutes({
      version: 1,
      routes: [
        { name: "shop", hostnames: ["shop.test"], rules: [{ backendRefs: [{ pool: "p" }] }] },
      ],
      pools: { p: pool(b.a) },
    });
    const h = harness({ env: { ADMIN_TOKEN: TOKEN } });
    expect((await h.fetch("http://elsewhere.test/")).status).toBe(404);
    expect((await h.fetch("http://shop.test/")).status).toBe(200);
    const body = (await (
      await h.fetch("http://shop.test/__switchyard/traffic", { headers: auth })
    ).json()) as { unrouted: number[] };
    expect(body.unrouted.reduce((n, v) => n + v, 0)).toBe(1);
  });

  it("shows each pool's endpoints with their health as this isolate sees it", async () => {
    await putRoutes(catchAll([{ pool: "p" }], { p: pool(b.a, b.reset, b.b) }));
    const h = harness({ env: { ADMIN_TOKEN: TOKEN } });
    for (let i = 0; i < 30; i++) await h.fetch("http://x.test/");
    const pools = (await (
      await h.fetch("http://x.test/__switchyard/pools", { headers: auth })
    ).json()) as {
      name: string;
      endpoints: {
        url: string;
        health: string;
        timesEjected: number;
        ejectedUntil: string | null;
      }[];
    }[];
    expect(pools.map((p) => p.name)).toEqual(["p"]);
    expect(pools[0]!.endpoints.map((e) => [e.url, e.health, e.timesEjected])).toEqual([
      [b.a, "up", 0],
      [b.reset, "down", 1],
      [b.b, "up", 0],
    ]);
    expect(pools[0]!.endpoints[1]!.ejectedUntil).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it("explains where a request goes and why the other rules lost", async () => {
    await putRoutes({
      version: 1,
      routes: [
        {
          name: "shop",
          hostnames: ["shop.test"],
          rules: [
            {
              name: "api",
              matches: [{ path: { value: "/api" }, headers: [{ name: "x-canary", value: "1" }] }],
              backendRefs: [{ pool: "p" }],
            },
            { name: "web", backendRefs: [{ pool: "p" }] },
          ],
        },
      ],
      pools: { p: pool(b.a) },
    });
    const h = harness({ env: { ADMIN_TOKEN: TOKEN } });
    const url = "http://x.test/__switchyard/explain?host=shop.test&path=/api/x&header=X-Canary:1";
    const result = (await (await h.fetch(url, { headers: auth })).json()) as {
      chosen: { rule: string };
      considered: { rule: string; verdict: string }[];
    };
    expect(result.chosen.rule).toBe("api");
    expect(result.considered.map((c) => [c.rule, c.verdict])).toEqual([
      ["api", "chosen"],
      ["web", "matches, lower precedence"],
    ]);
    const bad = await h.fetch("http://x.test/__switchyard/explain?path=/", { headers: auth });
    expect(bad.status).toBe(400);
  });

  it("lists and explains every route of a compiled layout, not only the shards read", async () => {
    const doc = {
      version: 1,
      routes: Array.from({ length: 30 }, (_, i) => ({
        name: `r${i}`,
        hostnames: [`h${i}.test`],
        rules: [{ backendRefs: [{ pool: "p" }] }],
      })),
      pools: { p: pool(b.a) },
    };
    await putCompiled(doc, 8, "admin");
    const h = harness({ env: { ADMIN_TOKEN: TOKEN } });
    expect(await h.backendOf("http://h1.test/")).toBe("a");
    const status = (await (
      await h.fetch("http://x.test/__switchyard/status", { headers: auth })
    ).json()) as { routes: { name: string }[]; layout: unknown };
    expect(status.routes.map((r) => r.name)).toEqual(doc.routes.map((r) => r.name));
    expect(status.layout).toEqual({ id: "admin", shards: 8, shardsRead: 1 });
    const url = "http://x.test/__switchyard/explain?host=h29.test&path=/";
    const explained = (await (await h.fetch(url, { headers: auth })).json()) as {
      chosen: { route: string };
    };
    expect(explained.chosen.route).toBe("r29");
  });

  it("serves the dashboard page, which holds no data of its own", async () => {
    await putRoutes(catchAll([{ pool: "p" }], { p: pool(b.a) }));
    const response = await harness({ env: { ADMIN_TOKEN: TOKEN } }).fetch(
      "http://x.test/__switchyard/",
    );
    expect(response.status).toBe(200);
    const html = await response.text();
    expect(html).toContain("<title>Switchyard</title>");
    expect(html).not.toContain(b.a);
  });

  it("stays off with a token shorter than 32 characters, and says so", async () => {
    await putRoutes(catchAll([{ pool: "p" }], { p: pool(b.a) }));
    const h = harness({ env: { ADMIN_TOKEN: "short" } });
    const response = await h.fetch("http://x.test/__switchyard/status", {
      headers: { authorization: "Bearer short" },
    });
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({ error: "admin_disabled" });
  });

  it("refuses a client's attempts for a minute after its 10 failed ones, and never a valid token", async () => {
    await putRoutes(catchAll([{ pool: "p" }], { p: pool(b.a) }));
    const h = harness({ env: { ADMIN_TOKEN: TOKEN } });
    const from = (ip: string, authorization?: string) => ({
      headers: { "cf-connecting-ip": ip, ...(authorization ? { authorization } : {}) },
    });
    const wrong = "Bearer wrong-wrong-wrong-wrong-wrong-wrong";
    const status = async (init: RequestInit) =>
      (await h.fetch("http://x.test/__switchyard/status", init)).status;
    // CORS preflights carry no credentials by design: they are no attempt.
    for (let i = 0; i < 20; i++) {
      const preflight = await h.fetch("http://x.test/__switchyard/status", {
        method: "OPTIONS",
        headers: { "cf-connecting-ip": "198.51.100.1", "access-control-request-method": "GET" },
      });
      expect(preflight.status).toBe(401);
    }
    for (let i = 0; i < 10; i++) expect(await status(from("198.51.100.1", wrong))).toBe(401);
    const locked = await h.fetch("http://x.test/__switchyard/status", from("198.51.100.1", wrong));
    expect(locked.status).toBe(429);
    expect(Number(locked.headers.get("retry-after"))).toBeGreaterThan(0);
    // Another client is not locked out by the first, and a valid token always gets in.
    expect(await status(from("198.51.100.2", wrong))).toBe(401);
    expect(await status(from("198.51.100.1", auth.authorization))).toBe(200);
    expect(await status(from("198.51.100.2", auth.authorization))).toBe(200);
    h.advance(60_000);
    expect(await status(from("198.51.100.1", wrong))).toBe(401);
  });

  it("sends a strict CSP, no framing, no sniffing, no caching", async () => {
    await putRoutes(catchAll([{ pool: "p" }], { p: pool(b.a) }));
    const h = harness({ env: { ADMIN_TOKEN: TOKEN } });
    for (const path of ["/__switchyard/", "/__switchyard/status"]) {
      const response = await h.fetch(`http://x.test${path}`, { headers: auth });
      const csp = response.headers.get("content-security-policy") ?? "";
      expect(csp).toContain("default-src 'none'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).toMatch(/script-src 'sha256-[A-Za-z0-9+/=]+'/);
      expect(csp).not.toContain("unsafe-inline");
      expect(response.headers.get("x-content-type-options")).toBe("nosniff");
      expect(response.headers.get("x-frame-options")).toBe("DENY");
      expect(response.headers.get("cache-control")).toBe("no-store");
    }
  });

  it("answers only on ADMIN_HOST when it is set; elsewhere the path is routed, without credentials", async () => {
    await putRoutes(catchAll([{ pool: "p" }], { p: pool(b.a) }));
    const h = harness({ env: { ADMIN_TOKEN: TOKEN, ADMIN_HOST: "lb-admin.example.com" } });
    const admin = await h.fetch("http://lb-admin.example.com/__switchyard/status", {
      headers: auth,
    });
    expect(admin.status).toBe(200);
    const routed = await h.fetch("http://shop.example.com/__switchyard/status", { headers: auth });
    const echo = (await routed.json()) as Echo;
    expect(echo).toMatchObject({ backend: "a", path: "/__switchyard/status" });
    // The admin token sent to the wrong host never reaches a backend.
    expect(echo.headers.authorization).toBeUndefined();
  });
});
