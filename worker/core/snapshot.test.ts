import { describe, expect, it } from "vitest";
import { poolOf, routesDoc, snapshotOf } from "../../test/fixtures/worker-rules.ts";
import { endpointId } from "./hash.ts";
import { compileSnapshot, kvPoolNames, ruleLabel } from "./snapshot.ts";

const routes = (refs: unknown[], pools: Record<string, unknown> = {}) => ({
  version: 1,
  routes: [{ name: "r", rules: [{ backendRefs: refs }] }],
  pools,
});

describe("compileSnapshot", () => {
  it("warns of a rule that answers 500, a redirect that sends a request to itself, and credentials for any origin", () => {
    const redirect = (settings: Record<string, unknown>) => ({
      filters: [{ type: "RequestRedirect", requestRedirect: settings }],
    });
    const snapshot = snapshotOf({
      version: 1,
      routes: [
        {
          name: "r",
          rules: [
            { name: "none" },
            { name: "https", ...redirect({ scheme: "https", statusCode: 301 }) },
            { name: "moved", ...redirect({ scheme: "https", hostname: "b.example" }) },
            {
              name: "cors",
              backendRefs: [{ pool: "p" }],
              filters: [{ type: "CORS", cors: { allowOrigins: ["*"], allowCredentials: true } }],
            },
          ],
        },
      ],
      pools: { p: { endpoints: [{ url: "http://p.test" }] } },
    });
    expect(snapshot.warnings).toEqual([
      "route r, rule none: no backendRefs, no RequestRedirect and no DirectResponse; it answers 500",
      "route r, rule https: its RequestRedirect only sets the scheme to https, so a request that already uses https is sent to itself (routes take both schemes; docs/filters.md)",
      'route r, rule cors: its CORS filter allows credentials from any origin ("*"): every web site a signed-in user visits can read these responses as that user; list the origins instead',
    ]);
  });

  it("prefers an inline pool over a KV pool of the same name, and says so", () => {
    const snapshot = snapshotOf(routes([{ pool: "p" }], { p: poolOf({ inline: 1 }) }), {
      p: poolOf({ kv: 1 }),
    });
    expect(snapshot.pool("p")?.endpoints.map((e) => e.origin)).toEqual(["http://inline.test"]);
    expect(snapshot.warnings).toEqual(["pool p: defined inline and in KV; the inline pool wins"]);
  });

  it("resolves pool names as names: constructor, toString and __proto__ are missing pools, not prototype members", () => {
    const snapshot = snapshotOf(
      routes(
        [{ pool: "constructor" }, { pool: "toString" }, { pool: "__proto__" }, { pool: "p" }],
        {
          p: poolOf({ inline: 1 }),
        },
      ),
    );
    for (const name of ["constructor", "toString", "__proto__"]) {
      expect(snapshot.pool(name)).toBeUndefined();
      expect(snapshot.warnings).toContain(
        `pool ${name}: no inline pool and no KV key pool:${name}; its share answers 500`,
      );
    }
    const rule = snapshot.rule(0, 0);
    expect(rule?.tiers[0]?.refs.map((r) => r.pool?.name)).toEqual([
      undefined,
      undefined,
      undefined,
      "p",
    ]);
  });

  it("warns about a pool whose transport binding ALLOWED_BINDINGS does not list", () => {
    const doc = routes([{ pool: "vpc" }], {
      vpc: { endpoints: [{ url: "http://10.0.0.2:8080" }], transport: { binding: "VPC" } },
    });
    const snapshot = compileSnapshot({
      generation: "g",
      routes: routesDoc(doc),
      kvPools: new Map(),
      local: true,
      allowedBindings: new Set(["OTHER"]),
    });
    expect(snapshot.warnings).toEqual([
      "pool vpc: transport binding VPC is not in ALLOWED_BINDINGS; its requests answer 502",
    ]);
  });

  it("warns about missing and empty pools", () => {
    const snapshot = snapshotOf(routes([{ pool: "gone" }, { pool: "empty" }]), {
      empty: { version: 1, endpoints: [] },
    });
    expect(snapshot.warnings).toEqual([
      "pool gone: no inline pool and no KV key pool:gone; its share answers 500",
      "pool empty: no endpoints; it answers 503",
    ]);
  });

  it("flags IP-literal endpoints without a transport binding outside local mode", () => {
    const doc = routes([{ pool: "ip" }, { pool: "vpc" }], {
      ip: { endpoints: [{ url: "http://10.0.0.1:8080" }] },
      vpc: { endpoints: [{ url: "http://10.0.0.2:8080" }], transport: { binding: "VPC" } },
    });
    expect(snapshotOf(doc, {}, false).warnings).toEqual([
      "pool ip: endpoint http://10.0.0.1:8080 is an IP address; Workers cannot fetch IP addresses without transport.binding (docs/deploy.md §3)",
    ]);
    expect(snapshotOf(doc, {}, true).warnings).toEqual([]);
  });

  it("names endpoints by a stable hash of their URL, never the URL", () => {
    const snapshot = snapshotOf(
      routes([{ pool: "p" }], { p: { endpoints: [{ url: "https://Pod-A.example.com/" }] } }),
    );
    const endpoint = snapshot.pool("p")?.endpoints[0];
    expect(endpoint?.id).toBe(endpointId("https://pod-a.example.com"));
    expect(endpoint?.id).toMatch(/^[0-9a-f]{14}$/);
  });

  it("lists only the pools it must read from KV", () => {
    expect(
      kvPoolNames(
        routesDoc(routes([{ pool: "a" }, { pool: "b" }, { pool: "a" }], { b: poolOf({ x: 1 }) })),
      ),
    ).toEqual(["a"]);
  });

  it("labels rules by name or index and converts timeouts", () => {
    const snapshot = snapshotOf({
      version: 1,
      routes: [
        {
          name: "shop",
          rules: [
            {
              name: "api",
              backendRefs: [{ pool: "p" }],
              timeouts: { request: "30s", backendRequest: "500ms" },
            },
            { backendRefs: [{ pool: "p" }] },
          ],
        },
      ],
      pools: { p: poolOf({ a: 1 }) },
    });
    expect([0, 1].map((i) => ruleLabel(snapshot.rule(0, i)!))).toEqual(["shop/api", "shop/1"]);
    expect(snapshot.rule(0, 0)?.timeouts).toEqual({ requestMs: 30_000, backendRequestMs: 500 });
  });

  it('takes a zero duration ("0s") as no timeout, as Gateway API says', () => {
    const snapshot = snapshotOf({
      version: 1,
      routes: [
        {
          name: "stream",
          rules: [
            { backendRefs: [{ pool: "p" }], timeouts: { request: "0s", backendRequest: "0ms" } },
            { backendRefs: [{ pool: "p" }], timeouts: { request: "0s", backendRequest: "5s" } },
          ],
        },
      ],
      pools: { p: poolOf({ a: 1 }) },
    });
    expect(snapshot.rule(0, 0)?.timeouts).toEqual({
      requestMs: undefined,
      backendRequestMs: undefined,
    });
    expect(snapshot.rule(0, 1)?.timeouts).toEqual({ requestMs: undefined, backendRequestMs: 5000 });
  });
});
