import { describe, expect, it } from "vitest";
import { parseRoutesDocument, type RoutesDocumentInput } from "../../contract/index.ts";
import { compileMatcher } from "./match.ts";
import { requestView } from "./request.ts";
import { hostIndex, ROUTES_PER_TEXT_SLICE, RouteTable, routeTableInSlices } from "./route-table.ts";

function table(routes: RoutesDocumentInput["routes"]): RouteTable {
  const parsed = parseRoutesDocument({ version: 1, routes });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  return new RouteTable(parsed.value);
}

const rule = { backendRefs: [{ pool: "p" }] };

describe("hostIndex", () => {
  it("indexes routes by lowercased hostname, wildcard suffix, or any host, in document order", () => {
    const index = hostIndex([
      { hostnames: ["Shop.Example.com", "shop.example.com", "*.Example.com"] },
      { hostnames: [] },
      { hostnames: ["shop.example.com"] },
      { hostnames: ["*.example.com"] },
    ]);
    expect([...index.exact]).toEqual([["shop.example.com", [0, 2]]]);
    expect([...index.wildcard]).toEqual([[".example.com", [0, 3]]]);
    expect(index.any).toEqual([1]);
  });
});

describe("RouteTable", () => {
  it("parses a route when it is first asked for and keeps it", () => {
    const routes = table([
      { name: "a", hostnames: ["a.example.com"], rules: [rule] },
      { name: "b", hostnames: ["b.example.com"], rules: [rule] },
    ]);
    const a = routes.route(0);
    expect(a?.name).toBe("a");
    expect(routes.route(0)).toBe(a);
    expect(routes.route(2)).toBeUndefined();
  });

  it("gives the whole document without keeping the routes it had to parse for it", () => {
    const routes = table([
      { name: "a", rules: [rule] },
      { name: "b", rules: [rule] },
    ]);
    const first = routes.document();
    expect(first.routes.map((r) => r.name)).toEqual(["a", "b"]);
    expect(routes.document().routes[1]).not.toBe(first.routes[1]);
    const served = routes.route(1);
    expect(routes.document().routes[1]).toBe(served);
  });

  it("compiles the matcher entries of a hostname only when a request names it", () => {
    const routes = table([
      { name: "a", hostnames: ["a.example.com"], rules: [rule] },
      { name: "b", hostnames: ["b.example.com"], rules: [rule] },
    ]);
    const asked: number[] = [];
    const matcher = compileMatcher({
      hosts: routes.hosts,
      route: (index) => {
        asked.push(index);
        return routes.route(index);
      },
    });
    expect(asked).toEqual([]);
    const found = matcher.match(requestView({ host: "b.example.com", path: "/" }));
    expect(found?.routeIndex).toBe(1);
    matcher.match(requestView({ host: "b.example.com", path: "/x" }));
    matcher.match(requestView({ host: "c.example.com", path: "/" }));
    expect(asked).toEqual([1]);
  });

  it("warns of a rule that can only answer 500, and names the pools its routes reference", () => {
    const routes = table([
      { name: "a", rules: [{ name: "empty" }, { backendRefs: [{ pool: "p" }, { pool: "q" }] }] },
    ]);
    expect(routes.warnings).toEqual([
      "route a, rule empty: no backendRefs, no RequestRedirect and no DirectResponse; it answers 500",
    ]);
    expect(routes.referencedPools).toEqual(["p", "q"]);
  });
});

describe("routeTableInSlices", () => {
  it("pauses between slices and holds what the table of the whole document holds", async () => {
    const names = Array.from({ length: 2 * ROUTES_PER_TEXT_SLICE + 1 }, (_, i) => `r-${i}`);
    const parsed = parseRoutesDocument({
      version: 1,
      routes: names.map((name) => ({ name, hostnames: [`${name}.example.com`], rules: [rule] })),
    });
    if (!parsed.ok) throw new Error("invalid");
    let pauses = 0;
    const sliced = await routeTableInSlices(parsed.value, async () => {
      pauses++;
    });
    expect(pauses).toBe(2);
    expect(sliced.document()).toEqual(new RouteTable(parsed.value).document());
    expect(sliced.hosts).toEqual(new RouteTable(parsed.value).hosts);
  });
});

describe("RouteTable summaries", () => {
  it("say each route's hostnames, rule count and filter types, in document order", () => {
    const routes = table([
      {
        name: "shop",
        hostnames: ["shop.example.com"],
        rules: [
          {
            filters: [{ type: "RequestHeaderModifier", requestHeaderModifier: { remove: ["x"] } }],
            backendRefs: [
              {
                pool: "p",
                filters: [
                  { type: "ResponseHeaderModifier", responseHeaderModifier: { remove: ["y"] } },
                ],
              },
            ],
          },
          rule,
        ],
      },
      { name: "plain", rules: [rule] },
    ]);
    expect(routes.summaries()).toEqual([
      {
        name: "shop",
        hostnames: ["shop.example.com"],
        rules: 2,
        filters: ["RequestHeaderModifier", "ResponseHeaderModifier"],
      },
      { name: "plain", hostnames: [], rules: 1, filters: [] },
    ]);
    expect(routes.routeNamed("plain")).toEqual(routes.route(1));
    expect(routes.routeNamed("shop")?.rules).toHaveLength(2);
    expect(routes.routeNamed("missing")).toBeUndefined();
  });
});
