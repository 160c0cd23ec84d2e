import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Echo } from "../../local/backends.ts";
import { backends, catchAll, harness, pool, putRoutes, webSocketRoundTrip } from "./harness.ts";

const b = backends();

describe("proxying", () => {
  it("forwards method, path, query, headers and body, and sets X-Forwarded-*", async () => {
    await putRoutes(catchAll([{ pool: "p" }], { p: pool(b.a) }));
    const response = await harness().fetch("https://shop.example.com/cart/items?id=7&id=8", {
      method: "PUT",
      headers: {
        "content-type": "text/plain",
        "x-custom": "kept",
        "cf-connecting-ip": "203.0.113.9",
        "x-forwarded-for": "198.51.100.4",
        connection: "keep-alive, x-drop-me",
        "x-drop-me": "1",
        "keep-alive": "timeout=5",
        te: "trailers",
        upgrade: "h2c",
        "proxy-connection": "keep-alive",
        "proxy-authorization": "Basic cHJveHk6c2VjcmV0",
        "cf-worker": "other.example",
      },
      body: "hello body",
    });
    expect(response.status).toBe(200);
    const echo = (await response.json()) as Echo;
    expect(echo).toMatchObject({
      backend: "a",
      method: "PUT",
      path: "/cart/items?id=7&id=8",
      body: "hello body",
    });
    expect(echo.headers).toMatchObject({
      "x-custom": "kept",
      "content-type": "text/plain",
      "x-forwarded-for": "198.51.100.4, 203.0.113.9",
      "x-forwarded-proto": "https",
      "x-forwarded-host": "shop.example.com",
    });
    expect(echo.headers.host).toBe(new URL(b.a).host);
    for (const name of [
      "x-drop-me",
      "te",
      "upgrade",
      "proxy-connection",
      "proxy-authorization",
      "cf-connecting-ip",
    ])
      expect(echo.headers[name], name).toBeUndefined();
    // The platform names the worker in CF-Worker on its subrequests; the client's never passes.
    expect(echo.headers["cf-worker"]).not.toBe("other.example");
    expect(echo.headers["keep-alive"]).not.toBe("timeout=5");
  });

  it("keeps the client's X-Request-Id or mints one for the backend; returns it with RESPONSE_REQUEST_ID", async () => {
    await putRoutes(catchAll([{ pool: "p" }], { p: pool(b.a) }));
    const h = harness();
    const kept = await h.fetch("http://x.test/", { headers: { "x-request-id": "req-42" } });
    expect(((await kept.json()) as Echo).headers["x-request-id"]).toBe("req-42");
    const minted = await h.fetch("http://x.test/");
    const id = ((await minted.json()) as Echo).headers["x-request-id"];
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    // By default the response goes out as the backend sent it: no copy for a header.
    expect(minted.headers.get("x-request-id")).toBeNull();
    const returning = harness({ env: { RESPONSE_REQUEST_ID: "true" } });
    const echoed = await returning.fetch("http://x.test/", {
      headers: { "x-request-id": "req-43" },
    });
    expect(echoed.headers.get("x-request-id")).toBe("req-43");
    const fresh = await returning.fetch("http://x.test/");
    expect(fresh.headers.get("x-request-id")).toBe(
      ((await fresh.json()) as Echo).headers["x-request-id"],
    );
  });

  it("rewrites a Location that names the endpoint to the client's scheme and host", async () => {
    await putRoutes(catchAll([{ pool: "p" }], { p: pool(b.redirect!) }));
    const response = await harness().fetch("https://shop.example.com/account", {
      redirect: "manual",
    });
    expect(response.status).toBe(302);
    expect(response.headers.get("location")).toBe("https://shop.example.com/login?next=%2F");
    expect(response.headers.get("content-location")).toBe("https://shop.example.com/here");
    expect(JSON.stringify([...response.headers])).not.toContain("127.0.0.1");
  });

  it("writes one access log line a request, with no cookie or credential in it", async () => {
    await putRoutes(catchAll([{ pool: "p" }], { p: pool(b.a) }));
    const h = harness();
    const response = await h.fetch("http://x.test/account", {
      headers: { cookie: "session=secret-cookie-value", authorization: "Bearer secret-token" },
    });
    expect(response.status).toBe(200);
    const echo = (await response.json()) as Echo;
    const lines = h.logs.filter((l) => l.message === "access");
    expect(lines).toHaveLength(1);
    expect(lines[0]?.fields).toMatchObject({
      requestId: echo.headers["x-request-id"],
      route: "all",
      rule: "0",
      pool: "p",
      status: 200,
      tries: 1,
      retried: [],
      generation: h.store.snapshot?.generation,
    });
    expect(JSON.stringify(h.logs)).not.toContain("secret-cookie-value");
    expect(JSON.stringify(h.logs)).not.toContain("secret-token");
    const quiet = harness({ env: { ACCESS_LOG_SAMPLE: "0" } });
    await quiet.fetch("http://x.test/");
    expect(quiet.logs.filter((l) => l.message === "access")).toEqual([]);
  });

  it("writes one Analytics Engine data point a request when ANALYTICS is bound, failures and unrouted ones too", async () => {
    await putRoutes({
      version: 1,
      routes: [
        {
          name: "shop",
          hostnames: ["x.test"],
          rules: [
            { name: "web", matches: [{ path: { value: "/web" } }], backendRefs: [{ pool: "p" }] },
            { name: "gone", backendRefs: [{ pool: "empty" }] },
          ],
        },
      ],
      pools: { p: pool(b.a), empty: { endpoints: [] } },
    });
    const points: AnalyticsEngineDataPoint[] = [];
    const h = harness({ env: { ANALYTICS: { writeDataPoint: (p: never) => points.push(p) } } });
    expect((await h.fetch("http://x.test/web")).status).toBe(200);
    expect((await h.fetch("http://x.test/other")).status).toBe(503);
    expect((await h.fetch("http://elsewhere.test/")).status).toBe(404);
    const endpointId = h.store.snapshot?.specs.get("p")?.endpoints[0]?.id;
    expect(points).toEqual([
      {
        indexes: ["shop"],
        blobs: ["shop", "web", "p", endpointId, "200", ""],
        doubles: [0, 1, 200],
      },
      { indexes: ["shop"], blobs: ["shop", "gone", "", "", "503", ""], doubles: [0, 0, 503] },
      // No route: the route and everything after it are empty.
      { indexes: [""], blobs: ["", "", "", "", "404", ""], doubles: [0, 0, 404] },
    ]);
    expect(endpointId).toMatch(/.+/);
  });

  it("streams a large request body through", async () => {
    await putRoutes(catchAll([{ pool: "p" }], { p: pool(b.a) }));
    const chunk = new TextEncoder().encode("x".repeat(64 * 1024));
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent === 32) return controller.close();
        sent++;
        controller.enqueue(chunk);
      },
    });
    const response = await harness().fetch("http://x.test/upload", { method: "POST", body });
    expect(((await response.json()) as Echo).body).toHaveLength(32 * 64 * 1024);
  });

  it("keeps the backend's own response headers and status", async () => {
    await putRoutes(catchAll([{ pool: "p" }], { p: pool(b.a) }));
    const response = await harness().fetch("http://x.test/");
    expect(response.headers.get("x-backend")).toBe("a");
    expect(response.headers.get("content-length")).toMatch(/^\d+$/);
    expect(response.headers.get("date")).not.toBeNull();
  });

  it("passes WebSocket upgrades through: an echo round trip", async () => {
    await putRoutes(catchAll([{ pool: "p" }], { p: pool(b.b) }));
    const response = await harness().fetch("http://x.test/ws", {
      headers: { upgrade: "websocket" },
    });
    expect(response.status).toBe(101);
    expect(await webSocketRoundTrip(response)).toBe("b: hello");
  });

  it("serves through the worker's default export", async () => {
    await putRoutes(catchAll([{ pool: "p" }], { p: pool(b.c) }));
    const response = await exports.default.fetch("http://x.test/entry");
    expect(await response.json()).toMatchObject({ backend: "c", path: "/entry" });
  });

  it("fetches a pool with transport.binding through that binding, and says when it is not bound", async () => {
    await putRoutes(
      catchAll([{ pool: "vpc" }], {
        vpc: {
          endpoints: [{ url: "http://10.20.30.40:8080" }],
          transport: { binding: "VPC_TEST" },
        },
      }),
    );
    const seen: string[] = [];
    const VPC_TEST = {
      // A Fetcher takes what fetch takes.
      fetch: async (input: RequestInfo | URL, init?: RequestInit) => {
        const request = new Request(input, init);
        seen.push(`${request.method} ${request.url}`);
        return new Response("through the tunnel", { headers: { "x-via": "vpc" } });
      },
    };
    const allowed = { VPC_TEST, ALLOWED_BINDINGS: "VPC_TEST" };
    const response = await harness({ env: allowed }).fetch("http://x.test/orders?id=1");
    expect(await response.text()).toBe("through the tunnel");
    expect(seen).toEqual(["GET http://10.20.30.40:8080/orders?id=1"]);
    // A bound binding the operator did not list is never used: a pool cannot pick its way in.
    const unlisted = harness({ env: { VPC_TEST } });
    const refused = await unlisted.fetch("http://x.test/orders");
    expect(refused.status).toBe(502);
    expect(seen).toHaveLength(1);
    expect(unlisted.logs.map((l) => l.message)).toContain(
      "pool vpc: transport binding VPC_TEST is not in ALLOWED_BINDINGS",
    );
    const unbound = await harness({ env: { ALLOWED_BINDINGS: "VPC_TEST" } }).fetch(
      "http://x.test/orders",
    );
    expect(unbound.status).toBe(502);
    expect(await unbound.json()).toEqual({
      error: "bad_gateway",
      route: "all",
      message: "the backend could not be reached",
      requestId: unbound.headers.get("x-request-id"),
    });
  });
});
