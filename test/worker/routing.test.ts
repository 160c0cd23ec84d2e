import { describe, expect, it } from "vitest";
import { backends, catchAll, harness, pool, putPool, putRoutes } from "./harness.ts";

const b = backends();

describe("routing table (HTTPRoute semantics) through the worker to real backends", () => {
  const doc = {
    version: 1,
    routes: [
      {
        name: "shop",
        hostnames: ["shop.example.com"],
        rules: [
          {
            name: "api",
            matches: [{ path: { type: "PathPrefix", value: "/api" } }],
            backendRefs: [{ pool: "b" }],
          },
          {
            name: "login",
            matches: [{ path: { type: "Exact", value: "/login" }, method: "POST" }],
            backendRefs: [{ pool: "c" }],
          },
        ],
      },
      {
        name: "wild",
        hostnames: ["*.example.com"],
        rules: [
          {
            matches: [{ headers: [{ name: "x-canary", value: "1" }] }],
            backendRefs: [{ pool: "c" }],
          },
          { matches: [{ queryParams: [{ name: "v", value: "2" }] }], backendRefs: [{ pool: "b" }] },
          { backendRefs: [{ pool: "a" }] },
        ],
      },
      {
        name: "regex",
        hostnames: ["files.test"],
        rules: [
          {
            matches: [{ path: { type: "RegularExpression", value: "/f/[0-9]+" } }],
            backendRefs: [{ pool: "c" }],
          },
        ],
      },
    ],
    pools: { a: pool(b.a), b: pool(b.b), c: pool(b.c) },
  };

  it.each<[string, RequestInit | undefined, string]>([
    ["http://shop.example.com/api/items?x=1", undefined, "b"],
    ["http://SHOP.example.com:8443/api", undefined, "b"],
    ["http://shop.example.com/apix", undefined, "a"], // not a whole segment: falls through to *.example.com
    ["http://shop.example.com/login", { method: "POST" }, "c"],
    ["http://shop.example.com/login", undefined, "a"], // method must match
    ["http://www.example.com/", { headers: { "x-canary": "1" } }, "c"],
    ["http://www.example.com/?v=2", undefined, "b"],
    ["http://a.b.example.com/?v=3", undefined, "a"],
    ["http://files.test/f/42", undefined, "c"],
    ["http://files.test/f/42x", undefined, "404"],
    ["http://example.com/", undefined, "404"], // a wildcard never matches the apex
  ])("%s %j → %s", async (url, init, expected) => {
    await putRoutes(doc);
    const h = harness();
    expect(await h.backendOf(url, init)).toBe(expected);
  });

  it("answers 404 with a JSON body when no route matches", async () => {
    await putRoutes(doc);
    const response = await harness().fetch("http://nothing.test/x");
    expect(response.status).toBe(404);
    expect(response.headers.get("content-type")).toContain("application/json");
    expect(await response.json()).toEqual({
      error: "no_route",
      message: "no route matches this request",
      requestId: response.headers.get("x-request-id"),
    });
  });
});

describe("balancing over real requests", () => {
  it("follows smooth WRR for weights 5,1,1: a a b a c a a, twice around", async () => {
    await putRoutes(catchAll([{ pool: "p" }], { p: pool({ url: b.a, weight: 5 }, b.b, b.c) }));
    const h = harness();
    const seen: string[] = [];
    for (let i = 0; i < 14; i++) seen.push(await h.backendOf("http://any.test/"));
    expect(seen.join("")).toBe("aabacaa".repeat(2));
  });

  it("splits 70/30/0 over 1,000 requests within ±3 %", async () => {
    await putRoutes(
      catchAll(
        [
          { pool: "x", weight: 70 },
          { pool: "y", weight: 30 },
          { pool: "z", weight: 0 },
        ],
        { x: pool(b.a), y: pool(b.b), z: pool(b.c) },
      ),
    );
    const h = harness();
    const counts: Record<string, number> = { a: 0, b: 0, c: 0 };
    for (let i = 0; i < 1000; i++) {
      const backend = await h.backendOf("http://any.test/");
      counts[backend] = (counts[backend] ?? 0) + 1;
    }
    expect(counts.a).toBeGreaterThanOrEqual(670);
    expect(counts.a).toBeLessThanOrEqual(730);
    expect(counts.b).toBeGreaterThanOrEqual(270);
    expect(counts.b).toBeLessThanOrEqual(330);
    expect(counts.c).toBe(0);
    expect(counts.a! + counts.b!).toBe(1000);
  });

  it("reads pools from pool: keys, and answers 500 for the share of a missing pool only", async () => {
    await putPool("shop/api:http", { version: 1, generation: 3, endpoints: [{ url: b.a }] });
    await putRoutes(catchAll([{ pool: "shop/api:http" }, { pool: "shop/missing:http" }]));
    const h = harness();
    const seen = [];
    for (let i = 0; i < 3; i++) seen.push(await h.backendOf("http://any.test/"));
    expect(seen).toEqual(["a", "500", "a"]);
    const failed = await h.fetch("http://any.test/"); // the next turn is the missing pool's
    // The client learns the reason and the route; the pool (a namespace and Service) goes to the log.
    expect(await failed.json()).toEqual({
      error: "missing_pool",
      route: "all",
      message: "a backend of this route is not configured",
      requestId: failed.headers.get("x-request-id"),
    });
    expect(h.logs).toContainEqual({
      level: "warn",
      message: 'backendRef names pool "shop/missing:http", which does not exist or is invalid',
      fields: {
        error: "missing-pool",
        route: "all",
        requestId: failed.headers.get("x-request-id"),
      },
    });
  });

  it("answers 503 for a pool with no endpoints and for an unreachable backend, never naming either", async () => {
    await putRoutes({
      version: 1,
      routes: [
        { name: "empty", hostnames: ["empty.test"], rules: [{ backendRefs: [{ pool: "none" }] }] },
        { name: "dead", hostnames: ["dead.test"], rules: [{ backendRefs: [{ pool: "dead" }] }] },
      ],
      pools: { none: { endpoints: [] }, dead: pool(b.closed) },
    });
    const h = harness();
    const empty = await h.fetch("http://empty.test/");
    expect(empty.status).toBe(503);
    expect(await empty.json()).toEqual({
      error: "no_backend",
      route: "empty",
      message: "no backend can take this request now",
      requestId: empty.headers.get("x-request-id"),
    });
    const dead = await h.fetch("http://dead.test/");
    expect(dead.status).toBe(503);
    const text = await dead.text();
    expect(JSON.parse(text)).toMatchObject({ error: "unreachable", route: "dead" });
    expect(text).not.toContain("127.0.0.1");
  });

  it("answers 500 when every backendRef has weight 0 (HTTPRouteAllBackendsWeightZero)", async () => {
    await putRoutes({
      version: 1,
      routes: [
        {
          name: "off",
          rules: [
            {
              backendRefs: [
                { pool: "a", weight: 0 },
                { pool: "b", weight: 0 },
              ],
            },
          ],
        },
      ],
      pools: { a: pool(b.a), b: pool(b.b) },
    });
    const h = harness();
    const response = await h.fetch("http://x.test/");
    expect(response.status).toBe(500);
    expect(await response.json()).toMatchObject({ error: "no_backends", route: "off" });
    expect(JSON.stringify(h.logs)).toContain("every backendRef of rule 0 has weight 0");
  });
});
