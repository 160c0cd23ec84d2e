import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { backends, catchAll, harness, pool, putCompiled, putPool, putRoutes } from "./harness.ts";

const b = backends();

describe("configuration loading", () => {
  it("loads routes and its pools in three rounds of KV calls, then serves from memory", async () => {
    for (let i = 0; i < 150; i++) await putPool(`p${i}`, { version: 1, endpoints: [{ url: b.a }] });
    const routes = [0, 1, 2].map((r) => ({
      name: `r${r}`,
      rules: Array.from({ length: 50 }, (_, i) => ({ backendRefs: [{ pool: `p${r * 50 + i}` }] })),
    }));
    await putRoutes({ version: 1, routes });
    const h = harness();
    expect(await h.backendOf("http://x.test/")).toBe("a");
    // The routes key's metadata (no compiled layout), the key as text, then 150 pools in two bulk
    // gets of ≤ 100, in parallel.
    expect(h.kvReads).toBe(4);
    for (let i = 0; i < 20; i++) await h.backendOf("http://x.test/");
    expect(h.kvReads).toBe(4);
    expect(h.store.snapshot?.specs.size).toBe(150);
  });

  it("picks up a changed document on the background refresh", async () => {
    await putRoutes(catchAll([{ pool: "p" }], { p: pool(b.a) }));
    const h = harness({ refreshSeconds: 10 });
    expect(await h.backendOf("http://x.test/")).toBe("a");
    await putRoutes(catchAll([{ pool: "p" }], { p: pool(b.b) }));
    h.advance(9_000);
    expect(await h.backendOf("http://x.test/")).toBe("a"); // not due yet: no KV call
    expect(h.kvReads).toBe(2); // the routes key's metadata, then the key as text
    h.advance(1_000);
    expect(await h.backendOf("http://x.test/")).toBe("a"); // served from memory, refreshed after
    // A document without a layout, as the load found it: its text and metadata in one read.
    expect(h.kvReads).toBe(3);
    expect(await h.backendOf("http://x.test/")).toBe("b");
  });

  it("reads a document without a layout once a refresh, and sees a layout pushed since", async () => {
    await putRoutes(catchAll([{ pool: "p" }], { p: pool(b.a) }));
    const h = harness({ refreshSeconds: 10 });
    expect(await h.backendOf("http://x.test/")).toBe("a");
    const reads = h.kvReads;
    h.advance(10_000);
    await h.backendOf("http://x.test/");
    expect(h.kvReads).toBe(reads + 1); // the pool is inline: the routes key, nothing else
    await putCompiled(catchAll([{ pool: "p" }], { p: pool(b.b) }), 4, "pushed");
    h.advance(10_000);
    await h.backendOf("http://x.test/"); // served, then refreshed: the layout's head is read
    expect(await h.backendOf("http://x.test/")).toBe("b");
    const compiled = h.kvReads;
    h.advance(10_000);
    await h.backendOf("http://x.test/");
    expect(h.kvReads).toBe(compiled + 1); // the routes key's metadata, its document left unread
    await putRoutes(catchAll([{ pool: "p" }], { p: pool(b.c) }));
    h.advance(10_000);
    await h.backendOf("http://x.test/");
    expect(await h.backendOf("http://x.test/")).toBe("c");
  });

  it("tells a changed text of the same length from the one it parsed", async () => {
    // b.a and b.b are loopback URLs of the same length: only the port's digits differ.
    expect(b.a.length).toBe(b.b.length);
    await putRoutes(catchAll([{ pool: "p" }], { p: pool(b.a) }));
    const h = harness({ refreshSeconds: 1 });
    expect(await h.backendOf("http://x.test/")).toBe("a");
    await putRoutes(catchAll([{ pool: "p" }], { p: pool(b.b) }));
    h.advance(1_000);
    await h.backendOf("http://x.test/");
    expect(await h.backendOf("http://x.test/")).toBe("b");
    const generation = h.store.snapshot?.generation;
    // The same text written again: recognised, nothing rebuilt.
    await putRoutes(catchAll([{ pool: "p" }], { p: pool(b.b) }));
    h.advance(1_000);
    await h.backendOf("http://x.test/");
    expect(h.store.snapshot?.generation).toBe(generation);
  });

  it("compares a long routes text a slice at a time: a change in its last megabyte is seen", async () => {
    const doc = (last: string) => ({
      version: 1,
      routes: Array.from({ length: 12_000 }, (_, i) => ({
        name: `r${i}`,
        hostnames: [i === 11_999 ? `${last}.example.com` : `h${i}.example.com`],
        rules: [{ backendRefs: [{ pool: "p" }] }],
      })),
      pools: { p: pool(b.a) },
    });
    await putRoutes(doc("h11999"));
    const h = harness({ refreshSeconds: 1 });
    expect(await h.backendOf("http://h11999.example.com/")).toBe("a");
    expect(JSON.stringify(doc("h11999")).length).toBeGreaterThan(2 ** 20);
    // The same length, one character changed near the end.
    await putRoutes(doc("z11999"));
    h.advance(1_000);
    await h.backendOf("http://h0.example.com/");
    expect(await h.backendOf("http://z11999.example.com/")).toBe("a");
  });

  it("picks up a changed pool document, and keeps WRR state while nothing changed", async () => {
    await putPool("svc", {
      version: 1,
      generation: 1,
      endpoints: [{ url: b.a, weight: 2 }, { url: b.b }],
    });
    await putRoutes(catchAll([{ pool: "svc" }]));
    const h = harness({ refreshSeconds: 1 });
    const seen = [];
    for (let i = 0; i < 6; i++) {
      seen.push(await h.backendOf("http://x.test/"));
      h.advance(1_000); // a refresh after every request that finds nothing new
    }
    expect(seen.join("")).toBe("abaaba");
    const generation = h.store.snapshot?.generation;
    await putPool("svc", { version: 1, generation: 2, endpoints: [{ url: b.c }] });
    await h.backendOf("http://x.test/"); // triggers the refresh
    expect(await h.backendOf("http://x.test/")).toBe("c");
    expect(h.store.snapshot?.generation).not.toBe(generation);
  });

  it("tells a pool's changed text of the same length from the one it compiled", async () => {
    expect(b.a.length).toBe(b.b.length);
    await putPool("svc", { version: 1, endpoints: [{ url: b.a }] });
    await putRoutes(catchAll([{ pool: "svc" }]));
    const h = harness({ refreshSeconds: 1 });
    expect(await h.backendOf("http://x.test/")).toBe("a");
    await putPool("svc", { version: 1, endpoints: [{ url: b.b }] });
    h.advance(1_000);
    await h.backendOf("http://x.test/");
    expect(await h.backendOf("http://x.test/")).toBe("b");
    const { generation, specs } = h.store.snapshot ?? {};
    // The same text written again (a new string from KV): recognised, nothing rebuilt.
    await putPool("svc", { version: 1, endpoints: [{ url: b.b }] });
    h.advance(1_000);
    await h.backendOf("http://x.test/");
    expect(h.store.snapshot?.generation).toBe(generation);
    expect(h.store.snapshot?.specs.get("svc")).toBe(specs?.get("svc"));
  });

  it("ignores a broken document and keeps serving the last good one, logging it once", async () => {
    await putRoutes(catchAll([{ pool: "p" }], { p: pool(b.a) }));
    const h = harness({ refreshSeconds: 1 });
    expect(await h.backendOf("http://x.test/")).toBe("a");
    await putRoutes({
      version: 1,
      routes: [
        {
          name: "r",
          rules: [{ matches: [{ path: { value: "api" } }], backendRefs: [{ pool: "p" }] }],
        },
      ],
    });
    for (let i = 0; i < 3; i++) {
      h.advance(1_000);
      expect(await h.backendOf("http://x.test/")).toBe("a");
    }
    const errors = h.logs.filter((line) => line.level === "error");
    expect(errors.map((line) => line.message)).toEqual([
      'the routes document is invalid: routes[0].rules[0].matches[0].path.value: must start with "/"',
    ]);
    expect(h.store.lastError?.message).toContain("routes[0].rules[0].matches[0].path.value");

    await putRoutes("{ not json");
    h.advance(1_000);
    expect(await h.backendOf("http://x.test/")).toBe("a");
    expect(h.store.lastError?.message).toMatch(
      /^the routes document is invalid: \(document\): is not JSON/,
    );

    await putRoutes(catchAll([{ pool: "p" }], { p: pool(b.b) }));
    h.advance(1_000);
    await h.backendOf("http://x.test/");
    expect(await h.backendOf("http://x.test/")).toBe("b");
    expect(h.store.lastError).toBeUndefined();
  });

  it("keeps the last good version of a pool whose new document is invalid", async () => {
    await putPool("svc", { version: 1, endpoints: [{ url: b.a }] });
    await putRoutes(catchAll([{ pool: "svc" }]));
    const h = harness({ refreshSeconds: 1 });
    expect(await h.backendOf("http://x.test/")).toBe("a");
    await putPool("svc", { version: 1, endpoints: [{ url: "not a url" }] });
    h.advance(1_000);
    await h.backendOf("http://x.test/");
    expect(await h.backendOf("http://x.test/")).toBe("a");
    expect(h.logs.filter((l) => l.level === "error").map((l) => l.message)).toEqual([
      "pool document pool:svc is invalid: endpoints[0].url: must be an absolute http:// or https:// URL",
    ]);
  });

  it("answers 503 saying why when no good document was ever loaded", async () => {
    await env.SWITCHYARD.delete("routes");
    const h = harness();
    const missing = await h.fetch("http://x.test/");
    expect(missing.status).toBe(503);
    expect(await missing.json()).toEqual({
      error: "no_config",
      message: "no routing configuration is loaded yet",
      requestId: missing.headers.get("x-request-id"),
    });
    await putRoutes({ version: 1, routes: "nope" });
    h.advance(1_000);
    const invalid = await h.fetch("http://x.test/");
    expect(invalid.status).toBe(503);
    // The load error is the operator's: in the log and the admin API, never in the body.
    expect(await invalid.text()).not.toContain("routes:");
    expect(h.logs.map((l) => l.message)).toContain(
      "no routes loaded yet: the routes document is invalid: routes: must be an array, not string",
    );
  });

  it("does not read KV on every request while no document is loadable", async () => {
    await env.SWITCHYARD.delete("routes");
    const h = harness();
    for (let i = 0; i < 5; i++) expect((await h.fetch("http://x.test/")).status).toBe(503);
    expect(h.kvReads).toBe(1);
    await putRoutes(catchAll([{ pool: "p" }], { p: pool(b.c) }));
    h.advance(1_000);
    expect(await h.backendOf("http://x.test/")).toBe("c");
  });
});
