import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  compiledIdOfKey,
  compiledMetadataOf,
  compileRoutes,
  layoutEntries,
  MAX_SHARDS,
  parseCompiledHead,
  parseCompiledShard,
  SHARD_TARGET_CHARS,
  shardCountFor,
  shardOf,
} from "./compiled.ts";
import { parseRoutesDocument } from "./parse.ts";
import type { RoutesDocument } from "./routes.ts";

const hostname = fc.constantFrom(
  "a.example.com",
  "B.example.com",
  "c.example.net",
  "*.example.com",
  "*.net",
  "d.test",
  "e.test",
);

const documents = fc
  .array(fc.uniqueArray(hostname, { maxLength: 3 }), { minLength: 0, maxLength: 12 })
  .map((hosts) => {
    const parsed = parseRoutesDocument({
      version: 1,
      routes: hosts.map((hostnames, i) => ({
        name: `r${i}`,
        hostnames,
        rules: [{ backendRefs: [{ pool: `p${i % 3}` }] }],
      })),
    });
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
    return parsed.value;
  });

describe("compileRoutes", () => {
  it("puts each route in the shard of each hostname (a wildcard's by its suffix), and in the head when it has none", () => {
    fc.assert(
      fc.property(documents, fc.integer({ min: 1, max: 8 }), (document, shards) => {
        const layout = compileRoutes(document, "id", shards);
        expect(layout.shards).toHaveLength(shards);
        expect(layout.metadata).toEqual({ compiled: "id", shards });
        expect(layout.head.routes).toBe(document.routes.length);
        const suffixes = new Set<string>();
        document.routes.forEach((route, index) => {
          const keys = route.hostnames.map((h) => {
            const lower = h.toLowerCase();
            if (lower.startsWith("*.")) suffixes.add(lower.slice(1));
            return lower.startsWith("*.") ? lower.slice(1) : lower;
          });
          const expectedShards = new Set(keys.map((key) => shardOf(key, shards)));
          layout.shards.forEach((shard, n) => {
            const held = shard.routes.filter(([i]) => i === index);
            expect(held.length).toBe(expectedShards.has(n) ? 1 : 0);
            for (const [, copy] of held) expect(copy).toEqual(route);
          });
          const shared = route.hostnames.length === 0;
          expect(layout.head.shared.some(([i]) => i === index)).toBe(shared);
        });
        expect(layout.head.wildcards).toEqual([...suffixes].sort());
        // Every part lists its routes in document order, which orders matches.
        for (const part of [layout.head.shared, ...layout.shards.map((s) => s.routes)]) {
          const indices = part.map(([i]) => i);
          expect(indices).toEqual([...indices].sort((a, b) => a - b));
        }
      }),
    );
  });

  it("writes parts that read back as what was written", () => {
    fc.assert(
      fc.property(documents, fc.integer({ min: 1, max: 8 }), (document, shards) => {
        const layout = compileRoutes(document, "abc", shards);
        expect(parseCompiledHead(JSON.stringify(layout.head), "abc")).toEqual(layout.head);
        for (const shard of layout.shards)
          expect(parseCompiledShard(JSON.stringify(shard), "abc", shard.shard)).toEqual(shard);
      }),
    );
  });

  it("names each part's key: the head first, then the shards in order", () => {
    fc.assert(
      fc.property(documents, fc.integer({ min: 1, max: 8 }), (document, shards) => {
        const layout = compileRoutes(document, "abc", shards);
        expect(layoutEntries(layout)).toEqual([
          { key: "routes@abc", value: JSON.stringify(layout.head) },
          ...layout.shards.map((shard, n) => ({
            key: `routes@abc/${n}`,
            value: JSON.stringify(shard),
          })),
        ]);
      }),
    );
  });

  it("refuses a shard count it cannot key", () => {
    const document: RoutesDocument = { version: 1, routes: [], pools: {} };
    expect(() => compileRoutes(document, "id", 0)).toThrow("shards must be an integer");
    expect(() => compileRoutes(document, "id", MAX_SHARDS + 1)).toThrow("shards must be");
  });
});

describe("shardOf", () => {
  it("is a shard in range, the same for the same host", () => {
    fc.assert(
      fc.property(fc.string(), fc.integer({ min: 1, max: MAX_SHARDS }), (host, shards) => {
        const shard = shardOf(host, shards);
        expect(Number.isInteger(shard) && shard >= 0 && shard < shards).toBe(true);
        expect(shardOf(host, shards)).toBe(shard);
      }),
    );
  });

  it("spreads hosts over the shards", () => {
    const counts = new Array(16).fill(0);
    for (let i = 0; i < 16_000; i++) counts[shardOf(`h${i}.example.com`, 16)]++;
    for (const count of counts) expect(count).toBeGreaterThan(800);
  });
});

describe("shardCountFor", () => {
  it("aims at SHARD_TARGET_CHARS a shard, from 1 to MAX_SHARDS", () => {
    expect(shardCountFor(0)).toBe(1);
    expect(shardCountFor(SHARD_TARGET_CHARS)).toBe(1);
    expect(shardCountFor(SHARD_TARGET_CHARS + 1)).toBe(2);
    expect(shardCountFor(100 * SHARD_TARGET_CHARS - 1)).toBe(100);
    expect(shardCountFor(1e12)).toBe(MAX_SHARDS);
  });
});

describe("reading the layout back", () => {
  it("takes the routes key's metadata only when it names a layout with a valid shard count", () => {
    expect(compiledMetadataOf({ compiled: "x", shards: 3 })).toEqual({ compiled: "x", shards: 3 });
    for (const bad of [
      null,
      undefined,
      "x",
      {},
      { compiled: "", shards: 1 },
      { compiled: "x" },
      { compiled: "x", shards: 0 },
      { compiled: "x", shards: 1.5 },
      { compiled: "x", shards: MAX_SHARDS + 1 },
      { owner: "switchyard-sync" },
    ])
      expect(compiledMetadataOf(bad)).toBeUndefined();
  });

  it("says what is wrong with a part that is not the one asked for", () => {
    expect(parseCompiledHead("{", "a")).toMatch(/^is not JSON: /);
    expect(parseCompiledHead("[]", "a")).toBe("version must be 1");
    expect(parseCompiledHead('{"version":1,"id":"b"}', "a")).toBe("it belongs to layout b, not a");
    expect(parseCompiledHead('{"version":1,"id":"a","routes":1,"shards":1}', "a")).toBe(
      "shared must be a list of routes",
    );
    expect(parseCompiledHead('{"version":1,"id":"a","routes":1,"shards":1,"shared":[]}', "a")).toBe(
      "wildcards must be a list of suffixes",
    );
    expect(parseCompiledShard('{"version":1,"id":"a","shard":2,"routes":[]}', "a", 1)).toBe(
      "it is shard 2, not 1",
    );
    expect(parseCompiledShard('{"version":1,"id":"a","shard":1}', "a", 1)).toBe(
      "routes must be a list",
    );
  });

  it("refuses a part whose entries are not [index, route] in document order", () => {
    const shard = (routes: unknown) =>
      parseCompiledShard(JSON.stringify({ version: 1, id: "a", shard: 0, routes }), "a", 0);
    const route = { name: "r", hostnames: ["a.test"], rules: [] };
    const message = "must be [index, route], a route with a name, hostnames and rules";
    expect(shard([[0, route]])).toMatchObject({ routes: [[0, route]] });
    expect(shard([route])).toBe(`routes[0] ${message}`);
    expect(
      shard([
        [0, route],
        [1.5, route],
      ]),
    ).toBe(`routes[1] ${message}`);
    expect(shard([[-1, route]])).toBe(`routes[0] ${message}`);
    expect(shard([[0, { ...route, hostnames: "a.test" }]])).toBe(`routes[0] ${message}`);
    expect(shard([[0, { ...route, hostnames: [1] }]])).toBe(`routes[0] ${message}`);
    expect(shard([[0, { name: "r", hostnames: [] }]])).toBe(`routes[0] ${message}`);
    expect(shard([[0, null]])).toBe(`routes[0] ${message}`);
    expect(
      shard([
        [2, route],
        [1, route],
      ]),
    ).toBe("routes[1]: routes must be in document order");
    const head = (fields: object) =>
      parseCompiledHead(
        JSON.stringify({ version: 1, id: "a", routes: 1, shards: 1, pools: {}, ...fields }),
        "a",
      );
    expect(head({ shared: [[0, "r"]], wildcards: [] })).toBe(`shared[0] ${message}`);
    expect(head({ shared: [], wildcards: [1] })).toBe("wildcards must be a list of suffixes");
  });

  it("names the layout of a compiled key, and none of another key", () => {
    expect(compiledIdOfKey("routes@abc")).toBe("abc");
    expect(compiledIdOfKey("routes@abc/12")).toBe("abc");
    expect(compiledIdOfKey("routes")).toBeUndefined();
    expect(compiledIdOfKey("pool:routes@abc")).toBeUndefined();
  });
});
