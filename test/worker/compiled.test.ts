import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { compiledShardKey, shardOf } from "../../contract/index.ts";
import { CompiledRouteTable } from "../../worker/core/compiled-table.ts";
import { RouteTable } from "../../worker/core/route-table.ts";
import { backends, harness, putCompiled, putPool, putRoutes } from "./harness.ts";

const b = backends();
const SHARDS = 8;

/** Hosts h0.test … h{n-1}.test, each with its own route and its own pool on backend a. */
function perHost(n: number, url = b.a) {
  return {
    version: 1,
    routes: Array.from({ length: n }, (_, i) => ({
      name: `r${i}`,
      hostnames: [`h${i}.test`],
      rules: [{ backendRefs: [{ pool: `p${i}` }] }],
    })),
    pools: Object.fromEntries(
      Array.from({ length: n }, (_, i) => [`p${i}`, { endpoints: [{ url }] }]),
    ),
  };
}

/** Two hosts of the first n whose shards differ. */
function hostsOfTwoShards(n: number): [number, number] {
  const first = shardOf("h0.test", SHARDS);
  for (let i = 1; i < n; i++) if (shardOf(`h${i}.test`, SHARDS) !== first) return [0, i];
  throw new Error("every host in one shard");
}

describe("the compiled routes layout", () => {
  it("serves a cold isolate's first request from the head and that host's shard: three KV calls", async () => {
    const doc = perHost(40);
    // The pools in KV: only those the shard's routes name are read.
    doc.pools = {};
    for (let i = 0; i < 40; i++) await putPool(`p${i}`, { version: 1, endpoints: [{ url: b.a }] });
    await putCompiled(doc, SHARDS, "one");
    const h = harness();
    expect(await h.backendOf("http://h5.test/")).toBe("a");
    // The routes key's metadata; the head and the shard in one bulk get; the shard's pools.
    expect(h.kvReads).toBe(3);
    const table = h.store.snapshot?.routes;
    expect(table).toBeInstanceOf(CompiledRouteTable);
    expect((table as CompiledRouteTable | undefined)?.shardsLoaded).toBe(1);
    const inShard = doc.routes.filter(
      (_, i) => shardOf(`h${i}.test`, SHARDS) === shardOf("h5.test", SHARDS),
    ).length;
    expect(h.store.snapshot?.specs.size).toBe(inShard);
  });

  it("reads another shard, with its pools, the first time a request names one of its hosts", async () => {
    const doc = perHost(40);
    await putCompiled(doc, SHARDS, "two");
    const [first, other] = hostsOfTwoShards(40);
    const h = harness();
    expect(await h.backendOf(`http://h${first}.test/`)).toBe("a");
    const reads = h.kvReads;
    expect(await h.backendOf(`http://h${other}.test/`)).toBe("a");
    expect(h.kvReads).toBe(reads + 1); // the shard; its pools are inline
    for (let i = 0; i < 5; i++) expect(await h.backendOf(`http://h${other}.test/`)).toBe("a");
    expect(h.kvReads).toBe(reads + 1);
  });

  it("never lets a wildcard route answer for an exact host whose shard is not read yet", async () => {
    const [first, other] = hostsOfTwoShards(40);
    const doc = perHost(40, b.b);
    // A wildcard route on backend c, first in the document: the exact routes still win.
    doc.routes.unshift({
      name: "wild",
      hostnames: ["*.test"],
      rules: [{ backendRefs: [{ pool: "w" }] }],
    });
    (doc.pools as Record<string, unknown>).w = { endpoints: [{ url: b.c }] };
    await putCompiled(doc, SHARDS, "three");
    const h = harness();
    expect(await h.backendOf(`http://h${first}.test/`)).toBe("b");
    expect(await h.backendOf("http://nobody.test/")).toBe("c");
    expect(await h.backendOf(`http://h${other}.test/`)).toBe("b");
  });

  it("reads a host's shard and its wildcard suffix's shard before matching", async () => {
    let i = 0;
    while (shardOf(`e${i}.w.test`, SHARDS) === shardOf(".w.test", SHARDS)) i++;
    const doc = perHost(20, b.a);
    doc.routes.push(
      {
        name: "exact",
        hostnames: [`e${i}.w.test`],
        rules: [
          {
            matches: [{ path: { type: "PathPrefix", value: "/exact" } }],
            backendRefs: [{ pool: "e" }],
          },
        ] as never,
      },
      { name: "wild", hostnames: ["*.w.test"], rules: [{ backendRefs: [{ pool: "w" }] }] },
    );
    Object.assign(doc.pools, {
      e: { endpoints: [{ url: b.b }] },
      w: { endpoints: [{ url: b.c }] },
    });
    await putCompiled(doc, SHARDS, "wild");
    const h = harness();
    // A first request elsewhere, so that the next one needs two shards read.
    const needed = [shardOf(`e${i}.w.test`, SHARDS), shardOf(".w.test", SHARDS)];
    let first = 0;
    while (needed.includes(shardOf(`h${first}.test`, SHARDS))) first++;
    expect(await h.backendOf(`http://h${first}.test/`)).toBe("a");
    // The exact route does not take /other: the wildcard does, from a shard of its own.
    expect(await h.backendOf(`http://e${i}.w.test/other`)).toBe("c");
    expect(await h.backendOf(`http://e${i}.w.test/exact`)).toBe("b");
    expect(await h.backendOf("http://z.w.test/")).toBe("c");
    expect((h.store.snapshot?.routes as CompiledRouteTable | undefined)?.shardsLoaded).toBe(
      new Set([...needed, shardOf(`h${first}.test`, SHARDS), shardOf("z.w.test", SHARDS)]).size,
    );
  });

  it("answers 503 and logs the key when a host's shard is missing, and serves the other hosts", async () => {
    const [first, other] = hostsOfTwoShards(40);
    await putCompiled(perHost(40), SHARDS, "four");
    await env.SWITCHYARD.delete(compiledShardKey("four", shardOf(`h${other}.test`, SHARDS)));
    const h = harness();
    expect(await h.backendOf(`http://h${first}.test/`)).toBe("a");
    const missing = await h.fetch(`http://h${other}.test/`);
    expect(missing.status).toBe(503);
    expect(h.logs.map((l) => l.message)).toContainEqual(
      expect.stringContaining(
        `the routes of h${other}.test could not be read: the routes of this host are in KV key "routes@four/`,
      ),
    );
    expect(await h.backendOf(`http://h${first}.test/`)).toBe("a");
  });

  it("answers 503 and says what is wrong when a host's shard is malformed", async () => {
    await putCompiled(perHost(10), SHARDS, "bad");
    const key = compiledShardKey("bad", shardOf("h3.test", SHARDS));
    await env.SWITCHYARD.put(
      key,
      JSON.stringify({ version: 1, id: "bad", shard: shardOf("h3.test", SHARDS), routes: [["x"]] }),
    );
    const h = harness();
    expect((await h.fetch("http://h3.test/")).status).toBe(503);
    expect(h.logs.map((l) => l.message)).toContainEqual(
      `the routes of h3.test could not be read: KV key "${key}" is malformed: routes[0] must be [index, route], a route with a name, hostnames and rules`,
    );
  });

  it("refreshes by the routes key's metadata: the same layout reads no route again, a new one is read", async () => {
    await putCompiled(perHost(10), SHARDS, "five");
    const h = harness({ refreshSeconds: 10 });
    expect(await h.backendOf("http://h1.test/")).toBe("a");
    const reads = h.kvReads;
    h.advance(10_000);
    await h.backendOf("http://h1.test/");
    expect(h.kvReads).toBe(reads + 1); // the routes key's metadata only: the pools are inline
    await putCompiled(perHost(10, b.b), SHARDS, "six");
    h.advance(10_000);
    expect(await h.backendOf("http://h1.test/")).toBe("a"); // served, then refreshed
    expect(await h.backendOf("http://h1.test/")).toBe("b");
    expect(h.store.history.map((g) => g.routes)).toEqual([10, 10]);
  });

  it("reads the document whole again when the routes key is overwritten without its layout", async () => {
    await putCompiled(perHost(10), SHARDS, "seven");
    const h = harness({ refreshSeconds: 10 });
    expect(await h.backendOf("http://h1.test/")).toBe("a");
    await putRoutes(perHost(10, b.c)); // as `wrangler kv key put routes` writes it: no metadata
    h.advance(10_000);
    await h.backendOf("http://h1.test/");
    expect(await h.backendOf("http://h1.test/")).toBe("c");
    expect(h.store.snapshot?.routes).toBeInstanceOf(RouteTable);
  });

  it("keeps serving the layout it has when a new layout's head is not in KV yet", async () => {
    await putCompiled(perHost(10), SHARDS, "eight");
    const h = harness({ refreshSeconds: 10 });
    expect(await h.backendOf("http://h1.test/")).toBe("a");
    await env.SWITCHYARD.put("routes", JSON.stringify(perHost(10, b.b)), {
      metadata: { compiled: "nine", shards: SHARDS },
    });
    h.advance(10_000);
    await h.backendOf("http://h1.test/");
    expect(await h.backendOf("http://h1.test/")).toBe("a");
    expect(h.store.lastError?.message).toBe(
      'the routes key names the compiled layout nine, but KV has no key "routes@nine" (switchyard push writes it first; KV may not show it here yet)',
    );
  });

  it("gives the admin API the whole document, read once per layout", async () => {
    await putCompiled(perHost(30), SHARDS, "ten");
    const h = harness();
    expect(await h.backendOf("http://h1.test/")).toBe("a");
    const whole = await h.store.wholeRoutes();
    expect(whole).toBeInstanceOf(RouteTable);
    expect((whole as RouteTable).summaries().map((s) => s.name)).toHaveLength(30);
    const reads = h.kvReads;
    expect(await h.store.wholeRoutes()).toBe(whole);
    expect(h.kvReads).toBe(reads);
  });
});
