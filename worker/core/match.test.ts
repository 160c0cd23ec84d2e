import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type CompiledShard,
  compileRoutes,
  type HttpRoute,
  parseRoutesDocument,
  type RoutesDocumentInput,
} from "../../contract/index.ts";
import { CompiledRouteTable } from "./compiled-table.ts";
import { compileMatcher, type RuleMatch } from "./match.ts";
import { referenceMatch } from "./match-reference.ts";
import { requestView } from "./request.ts";
import { RouteTable } from "./route-table.ts";

type RouteInput = RoutesDocumentInput["routes"][number];

function routesOf(routes: unknown[]): HttpRoute[] {
  const parsed = parseRoutesDocument({ version: 1, routes });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  return parsed.value.routes;
}

/** A route whose rules each have one match and a pool naming them, so results read as names. */
function route(
  name: string,
  hostnames: string[],
  ...matches: Record<string, unknown>[]
): RouteInput {
  return {
    name,
    hostnames,
    rules: matches.map((match, i) => ({
      name: `m${i}`,
      matches: [match],
      backendRefs: [{ pool: `${name}.${i}` }],
    })),
  } as RouteInput;
}

const prefix = (value: string) => ({ path: { type: "PathPrefix", value } });
const exact = (value: string) => ({ path: { type: "Exact", value } });
const regex = (value: string) => ({ path: { type: "RegularExpression", value } });

type Req = Parameters<typeof requestView>[0];

function winner(routes: HttpRoute[], request: Req): string | undefined {
  const found = compileMatcher(routes).match(requestView(request));
  const expected = referenceMatch(routes, requestView(request));
  expect(found && strip(found)).toEqual(expected);
  if (!found) return undefined;
  const r = routes[found.routeIndex]!;
  return `${r.name}.${found.ruleIndex}`;
}

function strip(m: RuleMatch): RuleMatch {
  return { routeIndex: m.routeIndex, ruleIndex: m.ruleIndex, matchIndex: m.matchIndex };
}

describe("hostnames", () => {
  const routes = routesOf([
    route("any", [], prefix("/")),
    route("short", ["*.example.com"], prefix("/")),
    route("long", ["*.b.example.com"], prefix("/")),
    route("exact", ["a.b.example.com"], prefix("/only")),
  ]);

  it.each([
    ["a.b.example.com", "/only/x", "exact.0"],
    ["A.B.Example.COM:8443", "/only", "exact.0"],
    ["a.b.example.com.", "/only", "exact.0"],
    ["a.b.example.com", "/other", "long.0"], // falls through to the next most specific hostname
    ["x.b.example.com", "/", "long.0"],
    ["b.example.com", "/", "short.0"],
    ["x.y.z.example.com", "/", "short.0"], // a wildcard spans one or more labels
    ["example.com", "/", "any.0"], // never the apex
    ["other.net", "/", "any.0"],
    ["[::1]:8787", "/", "any.0"],
  ])("%s %s → %s", (host, path, expected) => {
    expect(winner(routes, { host, path })).toBe(expected);
  });

  it("matches no host when no route takes it", () => {
    expect(
      winner(routesOf([route("r", ["a.example.com"], prefix("/"))]), {
        host: "b.example.com",
        path: "/",
      }),
    ).toBeUndefined();
  });
});

describe("paths", () => {
  const routes = routesOf([
    route(
      "p",
      [],
      prefix("/abc"),
      prefix("/abc/def/"),
      exact("/abc/def"),
      regex("/abc/[0-9]+"),
      prefix("/"),
      regex("/x.*"),
      regex("/xy.*"),
    ),
  ]);

  it.each([
    ["/abc", "p.0"],
    ["/abc/", "p.0"],
    ["/abc/x", "p.0"],
    ["/abcd", "p.4"], // whole segments only
    ["/abc/def", "p.2"], // Exact beats a longer-or-equal PathPrefix
    ["/abc/def/", "p.1"], // Exact is strict about the trailing slash
    ["/abc/def/g", "p.1"], // longest PathPrefix, counted without its trailing slash
    ["/ABC", "p.4"], // case-sensitive
    ["/abc/123", "p.0"], // a RegularExpression ranks after every PathPrefix
    ["/x1", "p.4"],
  ])("%s → %s", (path, expected) => {
    expect(winner(routes, { host: "h", path })).toBe(expected);
  });

  it("matches regular expressions in linear time: a backtracking pattern cannot stall the isolate", () => {
    // On a backtracking engine /(a+)+ against 40 a's and a '!' takes 2^40 steps.
    const evil = routesOf([route("r", [], regex("/(a+)+"))]);
    const attack = `/${"a".repeat(4_000)}!`;
    const started = performance.now();
    expect(winner(evil, { host: "h", path: attack })).toBeUndefined();
    expect(winner(evil, { host: "h", path: "/aaaa" })).toBe("r.0");
    expect(performance.now() - started).toBeLessThan(2_000); // microseconds on RE2
  });

  it("looks up prefixes no longer than the longest configured: thousands of segments cost no more", () => {
    // Each lookup hashes the prefix (V8 hashes strings of up to 16 K characters in full): over
    // every "/" of a 64 KB path of short segments that was quadratic, about 100 ms a request.
    const deep = `/abc${"/a".repeat(32_768)}`;
    const started = performance.now();
    for (let i = 0; i < 20; i++) {
      expect(winner(routes, { host: "h", path: deep })).toBe("p.0");
      expect(winner(routes, { host: "h", path: `/zzz${"/a".repeat(32_768)}` })).toBe("p.4");
    }
    expect(performance.now() - started).toBeLessThan(500); // 40 matches: 4 s before, µs now
  });

  it("never matches a regular expression against a value longer than 4,096 characters", () => {
    const any = routesOf([route("r", [], regex("/.*"))]);
    expect(winner(any, { host: "h", path: `/${"x".repeat(4_095)}` })).toBe("r.0");
    expect(winner(any, { host: "h", path: `/${"x".repeat(4_096)}` })).toBeUndefined();
  });

  it("ranks regular expressions after prefixes, the first listed winning, the whole path matching", () => {
    const regexOnly = routesOf([route("r", [], regex("/x.*"), regex("/xy.*"), regex("/a"))]);
    expect(winner(regexOnly, { host: "h", path: "/xyz" })).toBe("r.0");
    expect(winner(regexOnly, { host: "h", path: "/a" })).toBe("r.2");
    expect(winner(regexOnly, { host: "h", path: "/ab" })).toBeUndefined();
  });
});

describe("method, headers and query parameters", () => {
  const routes = routesOf([
    route(
      "c",
      [],
      prefix("/"),
      { ...prefix("/"), method: "GET" },
      { ...prefix("/"), headers: [{ name: "X-Canary", value: "1" }] },
      {
        ...prefix("/"),
        headers: [
          { name: "x-canary", value: "1" },
          { name: "x-env", type: "RegularExpression", value: "st.*" },
        ],
      },
      { ...prefix("/"), queryParams: [{ name: "v", value: "2" }] },
      { ...prefix("/"), method: "POST", queryParams: [{ name: "v", value: "2" }] },
    ),
  ]);

  it.each<[Req, string]>([
    [{ host: "h", path: "/" }, "c.1"], // a method match beats none
    [{ host: "h", path: "/", method: "HEAD" }, "c.0"], // GET does not match HEAD
    [{ host: "h", path: "/", method: "PUT", headers: { "x-canary": "1" } }, "c.2"],
    [{ host: "h", path: "/", method: "PUT", headers: { "x-canary": "1, 2" } }, "c.2"], // first value
    [{ host: "h", path: "/", method: "PUT", headers: { "x-canary": "01" } }, "c.0"],
    [
      { host: "h", path: "/", method: "PUT", headers: { "x-canary": "1", "x-env": "staging" } },
      "c.3",
    ], // more headers win
    [
      { host: "h", path: "/", method: "PUT", headers: { "x-canary": "1", "x-env": "Staging" } },
      "c.2",
    ], // values are case-sensitive
    [{ host: "h", path: "/", method: "PUT", query: { v: "2" } }, "c.4"],
    [{ host: "h", path: "/", method: "PUT", query: { V: "2" } }, "c.0"], // query names are case-sensitive
    [{ host: "h", path: "/", method: "POST", query: { v: "2" } }, "c.5"],
    [{ host: "h", path: "/", method: "GET", headers: { "x-canary": "1" } }, "c.1"], // method before headers
  ])("%j → %s", (request, expected) => {
    expect(winner(routes, request)).toBe(expected);
  });

  it("breaks remaining ties by route, then rule", () => {
    const tied = routesOf([
      route("first", [], prefix("/a"), prefix("/a")),
      route("second", [], prefix("/a")),
    ]);
    expect(winner(tied, { host: "h", path: "/a" })).toBe("first.0");
  });

  it("ORs the matches of one rule", () => {
    const routes = routesOf([
      { name: "r", rules: [{ matches: [exact("/a"), exact("/b")], backendRefs: [{ pool: "p" }] }] },
    ]);
    expect(compileMatcher(routes).match(requestView({ host: "h", path: "/b" }))).toMatchObject({
      ruleIndex: 0,
      matchIndex: 1,
    });
  });
});

describe("the compiled matcher agrees with the reference", () => {
  const hostname = fc.constantFrom(
    "a.example.com",
    "b.a.example.com",
    "*.example.com",
    "*.a.example.com",
    "example.com",
    "other.net",
  );
  const segment = fc.constantFrom("a", "b", "ab", "");
  const path = fc
    .array(segment, { minLength: 0, maxLength: 3 })
    .map((parts) => `/${parts.join("/")}`);
  const pathMatch = fc.oneof(
    path.map((value) => ({ type: "Exact", value })),
    path.map((value) => ({ type: "PathPrefix", value })),
    fc
      .constantFrom("/a.*", "/a/b", "/[ab]+", ".*/")
      .map((value) => ({ type: "RegularExpression", value })),
  );
  const valueMatch = (names: string[]) =>
    fc.record({ name: fc.constantFrom(...names), value: fc.constantFrom("1", "2") });
  const match = fc.record(
    {
      path: pathMatch,
      method: fc.constantFrom("GET", "POST"),
      headers: fc.uniqueArray(valueMatch(["x-a", "x-b"]), {
        maxLength: 2,
        selector: (h) => h.name,
      }),
      queryParams: fc.uniqueArray(valueMatch(["q", "r"]), {
        maxLength: 2,
        selector: (q) => q.name,
      }),
    },
    { requiredKeys: ["path"] },
  );
  const rule = fc.record({
    matches: fc.array(match, { minLength: 1, maxLength: 3 }),
    backendRefs: fc.constant([{ pool: "p" }]),
  });
  const routes = fc
    .array(
      fc.record({
        hostnames: fc.uniqueArray(hostname, { maxLength: 2 }),
        rules: fc.array(rule, { minLength: 1, maxLength: 3 }),
      }),
      { minLength: 1, maxLength: 6 },
    )
    .map((list) => routesOf(list.map((r, i) => ({ name: `r${i}`, ...r }))));
  const request = fc.record({
    host: fc.constantFrom(
      "a.example.com",
      "b.a.example.com",
      "c.b.a.example.com",
      "example.com",
      "other.net",
      "x.example.com",
    ),
    path: fc.oneof(
      path,
      path.map((p) => `${p}/`),
    ),
    method: fc.constantFrom("GET", "POST", "HEAD"),
    headers: fc.record({ "x-a": fc.constantFrom("1", "2", "1, 2") }, { requiredKeys: [] }),
    query: fc.record(
      { q: fc.constantFrom("1", "2"), r: fc.constantFrom("1") },
      { requiredKeys: [] },
    ),
  });

  it("on random documents and requests", () => {
    fc.assert(
      fc.property(
        routes,
        fc.array(request, { minLength: 1, maxLength: 20 }),
        fc.integer({ min: 1, max: 4 }),
        (doc, requests, shards) => {
          const document = { version: 1 as const, routes: doc, pools: {} };
          // From the routes in memory, from a table holding them as text, and from a compiled
          // layout whose shards are read only as requests name their hosts (as the store does).
          const layout = compileRoutes(document, "id", shards);
          const compiled = new CompiledRouteTable(layout.head);
          const matchers = [
            compileMatcher(doc),
            compileMatcher(new RouteTable(document)),
            compileMatcher(compiled),
          ];
          for (const r of requests) {
            const view = requestView(r);
            // The host's shard, then each shard of a suffix some wildcard names, as the store reads them.
            for (let n = compiled.missingShard(view.host); n !== undefined; ) {
              compiled.addShard(layout.shards[n] as CompiledShard);
              const next = compiled.missingShard(view.host);
              expect(next).not.toBe(n);
              n = next;
            }
            const expected = referenceMatch(doc, view);
            for (const matcher of matchers) {
              const found = matcher.match(view);
              expect(found && strip(found)).toEqual(expected);
            }
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
