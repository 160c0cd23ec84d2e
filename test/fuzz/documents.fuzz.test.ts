import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  formatProblem,
  parsePoolDocument,
  parsePoolText,
  parseRoutesDocument,
  parseRoutesText,
  parseRoutesTextInSlices,
  ROUTES_PER_SLICE,
} from "../../contract/index.ts";
import { compilePoolDocument } from "../../worker/core/compiled-pool.ts";
import { redirectLocation } from "../../worker/core/filters.ts";
import { requestView } from "../../worker/core/request.ts";
import { RouteTable } from "../../worker/core/route-table.ts";
import { compileSnapshot } from "../../worker/core/snapshot.ts";
import { RUNS } from "./runs.ts";

/**
 * The documents in KV are the worker's input: whatever they hold, parsing answers a value or
 * located problems and never throws, and a document that validates always compiles and matches.
 */

const NAMES = ["constructor", "toString", "__proto__", "hasOwnProperty", "p", "q", "shop/api:http"];

/** Mostly `good`, sometimes `odd`: documents near the valid ones, with odd values mixed in. */
const mostly = <T, U>(good: fc.Arbitrary<T>, odd: fc.Arbitrary<U>) =>
  fc.oneof({ arbitrary: good, weight: 40 }, { arbitrary: odd, weight: 1 });

const ORIGINS = [
  "http://a.test",
  "https://b.example:8443",
  "http://[::1]:9000",
  "http://10.0.0.1:80",
];

const pathModifier = fc.oneof(
  fc.record({
    type: mostly(fc.constant("ReplaceFullPath"), fc.string()),
    replaceFullPath: mostly(fc.constantFrom("/", "/full", "/a/b/"), fc.string()),
  }),
  fc.record({
    type: fc.constant("ReplacePrefixMatch"),
    replacePrefixMatch: mostly(fc.constantFrom("", "/", "/v2", "/v2/"), fc.string()),
  }),
);
const headerEdits = fc.record(
  {
    set: fc.array(
      fc.record({
        name: mostly(fc.constant("X-A"), fc.constantFrom("Host", "x-a")),
        value: mostly(fc.constantFrom("1", "a b"), fc.string()),
      }),
      { maxLength: 1 },
    ),
    add: fc.array(fc.record({ name: fc.constant("X-C"), value: fc.constantFrom("1", "a b") }), {
      maxLength: 1,
    }),
    remove: fc.array(mostly(fc.constant("X-D"), fc.constantFrom("x-c", "Connection")), {
      maxLength: 1,
    }),
  },
  { requiredKeys: [] },
);
/** Filters near valid ones: every type, odd settings now and then. */
const filterLike = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      type: fc.constant("RequestHeaderModifier"),
      requestHeaderModifier: headerEdits,
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      type: fc.constant("ResponseHeaderModifier"),
      responseHeaderModifier: headerEdits,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant("RequestRedirect"),
      requestRedirect: fc.record(
        {
          scheme: mostly(fc.constantFrom("http", "https"), fc.string()),
          hostname: mostly(fc.constantFrom("example.org", "a.b.test"), fc.string()),
          port: mostly(fc.integer({ min: 1, max: 65535 }), fc.integer()),
          path: pathModifier,
          statusCode: mostly(fc.constantFrom(301, 302, 303, 307, 308), fc.integer()),
        },
        { requiredKeys: [] },
      ),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      type: fc.constant("URLRewrite"),
      urlRewrite: fc.record({ path: pathModifier }, { requiredKeys: [] }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      type: fc.constant("RequestMirror"),
      requestMirror: fc.record(
        {
          backendRef: fc.record({ pool: fc.constantFrom(...NAMES) }),
          percent: mostly(fc.nat(100), fc.integer()),
        },
        { requiredKeys: ["backendRef"] },
      ),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      type: fc.constant("CORS"),
      cors: fc.record(
        {
          allowOrigins: fc.array(
            mostly(fc.constantFrom("*", "https://a.test", "https://*.b.test:8443"), fc.string()),
            { maxLength: 2 },
          ),
          allowMethods: fc.array(fc.constantFrom("GET", "*", "PUT"), { maxLength: 2 }),
          allowCredentials: fc.boolean(),
          maxAge: mostly(fc.integer({ min: 1, max: 86400 }), fc.integer()),
        },
        { requiredKeys: [] },
      ),
    }),
  },
  { weight: 1, arbitrary: fc.record({ type: fc.constantFrom("ExtensionRef", "Bogus", "CORS") }) },
);

const routesLike = fc.record({
  version: mostly(fc.constant(1), fc.jsonValue()),
  routes: fc.array(
    fc.record(
      {
        name: mostly(fc.constantFrom("r", "shop", "api-1", "x.y"), fc.string()),
        hostnames: fc.array(
          mostly(fc.constantFrom("a.example.com", "*.example.com", "b.test"), fc.string()),
          { maxLength: 3 },
        ),
        rules: fc.array(
          fc.record(
            {
              name: mostly(fc.constantFrom("web", "api", "0"), fc.string()),
              matches: fc.array(
                fc.record(
                  {
                    path: fc.record({
                      type: mostly(
                        fc.constantFrom("Exact", "PathPrefix", "RegularExpression"),
                        fc.string(),
                      ),
                      value: mostly(
                        fc.oneof(
                          fc
                            .webPath()
                            .map((p) => `/${p.replace(/^\/+/, "").replace(/[?#\s]/g, "")}`),
                          fc.constantFrom("/", "/a", "/a/b"),
                        ),
                        fc.constantFrom(
                          "/(a+)+",
                          "/(?=x)",
                          "/[",
                          "(a)\\1",
                          "",
                          "x",
                          "/%2e%2e/",
                          "/é",
                        ),
                      ),
                    }),
                    method: mostly(fc.constantFrom("GET", "POST", "PUT"), fc.string()),
                  },
                  { requiredKeys: [] },
                ),
                { maxLength: 3 },
              ),
              filters: fc.option(fc.array(filterLike, { maxLength: 2 }), { nil: undefined }),
              backendRefs: fc.array(
                fc.record(
                  {
                    pool: fc.constantFrom(...NAMES),
                    weight: mostly(fc.nat(1000), fc.oneof(fc.integer(), fc.double())),
                    priority: mostly(fc.nat(16), fc.nat(40)),
                    filters: fc.option(fc.array(filterLike, { maxLength: 2 }), { nil: undefined }),
                  },
                  { requiredKeys: ["pool"] },
                ),
                { maxLength: 4 },
              ),
              sessionPersistence: fc.option(
                fc.record(
                  { idleTimeout: mostly(fc.constantFrom("30m", "1h"), fc.string()) },
                  { requiredKeys: [] },
                ),
                { nil: undefined },
              ),
              retry: fc.option(
                fc.record(
                  {
                    attempts: mostly(fc.nat(10), fc.integer()),
                    codes: fc.array(mostly(fc.constantFrom(502, 503), fc.integer())),
                  },
                  { requiredKeys: [] },
                ),
                { nil: undefined },
              ),
            },
            { requiredKeys: ["backendRefs"] },
          ),
          { minLength: 1, maxLength: 3 },
        ),
      },
      { requiredKeys: ["name", "rules"] },
    ),
    { maxLength: 4 },
  ),
  pools: fc.dictionary(
    fc.constantFrom(...NAMES.filter((n) => n !== "__proto__")),
    fc.record({
      endpoints: fc.array(
        fc.record(
          {
            url: mostly(
              fc.constantFrom(...ORIGINS),
              fc.constantFrom(
                "http://a.test/?",
                "http://a.test#",
                "ftp://x",
                "http://u:p@a.test",
                "http://a.test/path",
              ),
            ),
            weight: mostly(fc.nat(1000), fc.integer()),
          },
          { requiredKeys: ["url"] },
        ),
        { maxLength: 4 },
      ),
    }),
  ),
});

describe("documents from KV, fuzzed", () => {
  it("draws documents that validate, not only ones that do not", () => {
    const valid = fc.sample(routesLike, 2000).filter((d) => parseRoutesDocument(d).ok);
    expect(valid.length).toBeGreaterThan(10);
    const withFilters = valid.filter((d) =>
      d.routes.some((r) => r.rules.some((rule) => rule.filters?.length)),
    );
    expect(withFilters.length).toBeGreaterThan(5);
  });

  it("validating a long routes list in slices gives what validating it whole gives", async () => {
    await fc.assert(
      fc.asyncProperty(
        routesLike,
        fc.integer({ min: ROUTES_PER_SLICE + 1, max: 3 * ROUTES_PER_SLICE }),
        fc.boolean(),
        async (doc, count, renamed) => {
          // Many routes from the drawn few: renamed they may all be valid, else names repeat.
          const base = doc.routes.length > 0 ? doc.routes : [{ name: "r", rules: [] }];
          const routes = Array.from({ length: count }, (_, i) => {
            const route = base[i % base.length] as { name?: unknown };
            return renamed ? { ...route, name: `r-${i}` } : route;
          });
          const text = JSON.stringify({ ...doc, routes });
          const whole = parseRoutesText(text);
          const sliced = await parseRoutesTextInSlices(text, async () => {});
          expect(sliced.ok).toBe(whole.ok);
          if (whole.ok && sliced.ok) expect(sliced.value).toEqual(whole.value);
          if (!whole.ok && !sliced.ok)
            expect(sliced.problems.map(formatProblem).sort()).toEqual(
              whole.problems.map(formatProblem).sort(),
            );
        },
      ),
      { numRuns: Math.max(20, Math.floor(RUNS / 20)) },
    );
    // Each run validates hundreds of routes twice: `npm run fuzz`'s 250 runs take about 40 s here.
  }, 180_000);

  it("any JSON text: a value or located problems, never a throw", () => {
    fc.assert(
      fc.property(fc.oneof(fc.json(), fc.string()), (text) => {
        for (const result of [parseRoutesText(text), parsePoolText(text)]) {
          if (!result.ok) for (const p of result.problems) expect(typeof p.path).toBe("string");
        }
      }),
      { numRuns: RUNS },
    );
  });

  it("a routes table gives back the validated document it holds as text, route by route", () => {
    fc.assert(
      fc.property(routesLike, (input) => {
        const parsed = parseRoutesDocument(input);
        if (!parsed.ok) return;
        const table = new RouteTable(parsed.value);
        expect(table.document()).toEqual(parsed.value);
        parsed.value.routes.forEach((route, index) => {
          expect(table.route(index)).toEqual(route);
        });
        expect(table.route(parsed.value.routes.length)).toBeUndefined();
      }),
      { numRuns: RUNS },
    );
  });

  it("a routes document that validates compiles, and matches any request without throwing", () => {
    fc.assert(
      fc.property(
        routesLike,
        fc.record({
          host: fc.oneof(fc.domain(), fc.string()),
          path: fc.oneof(
            fc.webPath(),
            fc.string().map((s) => `/${s}`),
          ),
        }),
        (input, req) => {
          const parsed = parseRoutesDocument(input);
          if (!parsed.ok) return;
          const snapshot = compileSnapshot({
            generation: "f",
            routes: parsed.value,
            kvPools: new Map(),
            local: true,
          });
          const view = requestView(req);
          const found = snapshot.matcher.match(view);
          if (found) {
            const rule = snapshot.rule(found.routeIndex, found.ruleIndex);
            expect(rule).toBeDefined();
            const filters = [
              rule?.filters,
              ...(rule?.tiers ?? []).flatMap((t) => t.refs.map((r) => r.filters)),
            ];
            for (const tier of rule?.tiers ?? [])
              for (const ref of tier.refs) if (ref.pool) expect(ref.pool.endpoints).toBeDefined();
            // Compiled filters turn any matched request into a path and a Location that parse.
            for (const f of filters) {
              if (f?.rewritePath) expect(f.rewritePath(view.path)).toMatch(/^\//);
              if (f?.redirect) {
                const at = {
                  scheme: "https",
                  host: "gw.test",
                  port: 443,
                  path: view.path,
                  search: "",
                };
                expect(() => new URL(redirectLocation(f.redirect as never, at))).not.toThrow();
              }
            }
          }
        },
      ),
      { numRuns: RUNS },
    );
  });

  it("a pool document that validates compiles", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.jsonValue(),
          routesLike.map((r) => ({
            version: 1,
            endpoints: Object.values(r.pools)[0]?.endpoints ?? [],
          })),
        ),
        (input) => {
          const parsed = parsePoolDocument(input);
          if (parsed.ok)
            expect(compilePoolDocument("p", parsed.value, "kv").endpoints.length).toBe(
              parsed.value.endpoints.length,
            );
        },
      ),
      { numRuns: RUNS },
    );
  });
});
