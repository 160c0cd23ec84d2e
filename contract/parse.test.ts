import { describe, expect, it } from "vitest";
import {
  formatProblem,
  parsePoolText,
  parseRoutesDocument,
  parseRoutesText,
  parseRoutesTextInSlices,
  ROUTES_PER_SLICE,
} from "./index.ts";

const valid = {
  version: 1,
  routes: [
    {
      name: "shop",
      hostnames: ["shop.example.com", "*.shop.example.com"],
      rules: [
        {
          name: "api",
          matches: [
            {
              path: { type: "PathPrefix", value: "/api" },
              method: "GET",
              headers: [{ name: "x-canary", value: "1" }],
              queryParams: [{ name: "v", value: "2" }],
            },
          ],
          backendRefs: [
            { pool: "shop/api:http", weight: 90 },
            { pool: "shop/api-canary:http", weight: 10 },
            { pool: "dr/shop/api:http", priority: 1 },
          ],
          sessionPersistence: {
            cookieName: "shop-api",
            absoluteTimeout: "24h",
            idleTimeout: "30m",
          },
          retry: { attempts: 2, codes: [502, 503, 504], backoff: "25ms" },
          timeouts: { request: "30s", backendRequest: "10s" },
        },
      ],
    },
  ],
  pools: {
    "static-site": {
      endpoints: [
        { url: "https://origin-a.example.net", weight: 2 },
        { url: "https://origin-b.example.net" },
      ],
    },
  },
};

function problems(input: unknown): string[] {
  const result = parseRoutesDocument(input);
  return result.ok ? [] : result.problems.map(formatProblem);
}

function withRule(rule: Record<string, unknown>) {
  return {
    version: 1,
    routes: [{ name: "r", rules: [{ backendRefs: [{ pool: "p" }], ...rule }] }],
  };
}

describe("routes document", () => {
  it("accepts the documented routes example and fills defaults", () => {
    const result = parseRoutesDocument(valid);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    const ref = result.value.routes[0]?.rules[0]?.backendRefs[2];
    expect(ref).toEqual({ pool: "dr/shop/api:http", weight: 1, priority: 0 + 1 });
    expect(result.value.pools["static-site"]?.endpoints[1]).toMatchObject({
      weight: 1,
      state: "ready",
    });
  });

  it("gives a rule without matches the PathPrefix / match", () => {
    const result = parseRoutesDocument(withRule({}));
    expect(result.ok && result.value.routes[0]?.rules[0]?.matches).toEqual([
      { path: { type: "PathPrefix", value: "/" }, headers: [], queryParams: [] },
    ]);
  });

  it("names the JSON path of each error", () => {
    const doc = structuredClone(valid) as typeof valid & { routes: unknown[] };
    doc.routes.push({
      name: "b",
      rules: [{ matches: [{}, { path: { value: "api" } }], backendRefs: [{ pool: "p" }] }],
    });
    expect(problems(doc)).toEqual([
      'routes[1].rules[0].matches[1].path.value: must start with "/"',
    ]);
  });

  it("reports every independent error at once", () => {
    expect(
      problems({
        version: 2,
        routes: [
          {
            name: "a",
            hostnames: ["bad host"],
            rules: [{ backendRefs: [{ pool: "p", weight: -1 }] }],
          },
          { name: "b", rules: [{ backendRefs: [{ pool: "" }], retires: 1 }] },
        ],
      }),
    ).toEqual([
      "version: must be 1",
      'routes[0].hostnames[0]: must be a hostname such as "shop.example.com" or "*.example.com"',
      "routes[0].rules[0].backendRefs[0].weight: must be 0 or more",
      "routes[1].rules[0].backendRefs[0].pool: must name a pool",
      'routes[1].rules[0]: unknown field "retires"',
    ]);
  });

  it.each([
    [
      { matches: [{ path: { type: "Exact", value: "x" } }] },
      'routes[0].rules[0].matches[0].path.value: must start with "/"',
    ],
    [
      { matches: [{ path: { type: "RegularExpression", value: "/(a" } }] },
      "routes[0].rules[0].matches[0].path.value: is not a valid RE2 regular expression",
    ],
    [
      { matches: [{ path: { type: "RegularExpression", value: "/(?=admin)a.*" } }] },
      "routes[0].rules[0].matches[0].path.value: is not a valid RE2 regular expression: error parsing regexp: invalid or unsupported Perl syntax",
    ],
    [
      { matches: [{ headers: [{ type: "RegularExpression", name: "x", value: "(a)\\1" }] }] },
      "routes[0].rules[0].matches[0].headers[0].value: is not a valid RE2 regular expression",
    ],
    [
      { matches: [{ path: { type: "RegularExpression", value: "/.{0,1000}x.{0,1000}y" } }] },
      "routes[0].rules[0].matches[0].path.value: is too costly to match: its RE2 program has 4005 instructions, at most 1000",
    ],
    [
      { matches: [{ method: "get" }] },
      "routes[0].rules[0].matches[0].method: must be one of GET, HEAD",
    ],
    [
      {
        matches: [
          {
            headers: [
              { name: "X-A", value: "1" },
              { name: "x-a", value: "2" },
            ],
          },
        ],
      },
      "routes[0].rules[0].matches[0].headers[1].name: repeats the name of entry [0]",
    ],
    [
      { matches: [{ headers: [{ name: "bad name", value: "1" }] }] },
      "routes[0].rules[0].matches[0].headers[0].name: must be a valid header name",
    ],
    [
      { matches: [{ queryParams: [{ name: "v", value: 2 }] }] },
      "routes[0].rules[0].matches[0].queryParams[0].value: must be a string, not number",
    ],
    [
      { retry: { attempts: 2, codes: [200] } },
      "routes[0].rules[0].retry.codes[0]: must be an HTTP status from 400 to 599",
    ],
    [
      { retry: { backoff: "25" } },
      'routes[0].rules[0].retry.backoff: must be a duration such as "500ms"',
    ],
    [
      {
        filters: Array.from({ length: 5 }, () => ({
          type: "RequestMirror",
          requestMirror: { backendRef: { pool: "p" } },
        })),
      },
      "routes[0].rules[0].filters[4]: a request of this rule would be mirrored 5 times: at most 4",
    ],
    [
      {
        filters: Array.from({ length: 2 }, () => ({
          type: "RequestMirror",
          requestMirror: { backendRef: { pool: "p" } },
        })),
        backendRefs: [
          {
            pool: "p",
            filters: Array.from({ length: 3 }, () => ({
              type: "RequestMirror",
              requestMirror: { backendRef: { pool: "p" } },
            })),
          },
        ],
      },
      "routes[0].rules[0].backendRefs[0].filters[2]: a request of this rule would be mirrored 5 times",
    ],
    [{ retry: { attempts: 101 } }, "routes[0].rules[0].retry.attempts: must be at most 100"],
    [{ hedge: { delay: "0s" } }, 'routes[0].rules[0].hedge.delay: must be more than "0s"'],
    [{ hedge: {} }, "routes[0].rules[0].hedge.delay:"],
    [
      { hedge: { delay: "100ms", maxHedges: 6 } },
      "routes[0].rules[0].hedge.maxHedges: must be at most 5",
    ],
    [
      { hedge: { delay: "100ms", percentile: 40 } },
      "routes[0].rules[0].hedge.percentile: must be from 50 to 99.9",
    ],
    [{ hedge: { delay: "100ms", after: "1s" } }, 'routes[0].rules[0].hedge: unknown field "after"'],
    [
      { timeouts: { request: "1s", backendRequest: "2s" } },
      "routes[0].rules[0].timeouts.backendRequest: must not be longer than timeouts.request",
    ],
    [
      { sessionPersistence: { idleTimeout: "1 hour" } },
      "routes[0].rules[0].sessionPersistence.idleTimeout: must be a duration",
    ],
    [
      { sessionPersistence: { cookieName: "a", sessionName: "b" } },
      "routes[0].rules[0].sessionPersistence.sessionName: names the cookie as cookieName does",
    ],
    [
      { sessionPersistence: { cookieConfig: { lifetimeType: "Permanent" } } },
      'routes[0].rules[0].sessionPersistence.cookieConfig.lifetimeType: "Permanent" needs absoluteTimeout',
    ],
    [
      { sessionPersistence: { cookieConfig: { lifetimeType: "Forever" } } },
      'routes[0].rules[0].sessionPersistence.cookieConfig.lifetimeType: must be "Permanent" or "Session"',
    ],
    [
      { sessionPersistence: { absoluteTimeout: "0s" } },
      'routes[0].rules[0].sessionPersistence.absoluteTimeout: must be at least "1s"',
    ],
    [
      { sessionPersistence: { idleTimeout: "500ms" } },
      'routes[0].rules[0].sessionPersistence.idleTimeout: must be at least "1s"',
    ],
  ])("refuses rule %j", (rule, expected) => {
    const found = problems(withRule(rule));
    expect(found).toHaveLength(1);
    expect(found[0]).toContain(expected);
  });

  it.each([
    { request: "0s", backendRequest: "5s" },
    { request: "10s", backendRequest: "0s" },
    { request: "0ms", backendRequest: "0s" },
  ])("accepts the zero duration, which disables a timeout, beside any other: %j", (timeouts) => {
    expect(problems(withRule({ timeouts }))).toEqual([]);
  });

  it("accepts Gateway API's sessionPersistence fields: sessionName and cookieConfig", () => {
    expect(
      problems(
        withRule({
          sessionPersistence: {
            sessionName: "shop",
            absoluteTimeout: "12h",
            cookieConfig: { lifetimeType: "Permanent" },
          },
        }),
      ),
    ).toEqual([]);
    expect(
      problems(withRule({ sessionPersistence: { cookieConfig: { lifetimeType: "Session" } } })),
    ).toEqual([]);
  });

  it("refuses repeated route names", () => {
    const route = { name: "same", rules: [{ backendRefs: [{ pool: "p" }] }] };
    expect(problems({ version: 1, routes: [route, route] })).toEqual([
      "routes[1].name: repeats the name of entry [0]",
    ]);
  });

  it("quotes pool names that are not identifiers in paths", () => {
    const doc = {
      version: 1,
      routes: [],
      pools: { "shop/x:http": { endpoints: [{ url: "http://a.example/path" }] } },
    };
    expect(problems(doc)).toEqual([
      'pools["shop/x:http"].endpoints[0].url: must be an origin only (scheme, host, port): the request path is appended to it',
    ]);
  });

  it.each(["http://a.example/?", "http://a.example/#", "http://a.example?x"])(
    "refuses %s: a trailing ? or # would swallow every request path",
    (url) => {
      const doc = { version: 1, routes: [], pools: { p: { endpoints: [{ url }] } } };
      expect(problems(doc)).toEqual([
        "pools.p.endpoints[0].url: must be an origin only (scheme, host, port): the request path is appended to it",
      ]);
    },
  );

  it("says when the text is not JSON, and where", () => {
    const result = parseRoutesText('{"version": 1,');
    expect(result.ok).toBe(false);
    expect(!result.ok && formatProblem(result.problems[0]!)).toMatch(
      /^\(document\): is not JSON: .*position/,
    );
  });

  it("says what is missing", () => {
    expect(problems({})).toEqual(["version: is required and must be 1", "routes: is required"]);
  });
});

describe("pool document", () => {
  it("accepts the documented pool example", () => {
    const result = parsePoolText(
      JSON.stringify({
        version: 1,
        generation: 42,
        updatedAt: "2026-11-25T10:00:00Z",
        endpoints: [
          {
            url: "https://pod-a.shop.example.com",
            weight: 1,
            state: "ready",
            zone: "eu-west-1a",
            readySince: "2026-11-25T09:58:00Z",
          },
          { url: "https://pod-b.shop.example.com", state: "draining" },
        ],
        transport: { binding: "VPC_SHOP" },
      }),
    );
    expect(result.ok).toBe(true);
  });

  it.each([
    [
      { version: 1, endpoints: [{ url: "ftp://x" }] },
      "endpoints[0].url: must use http or https, not ftp",
    ],
    [
      { version: 1, endpoints: [{ url: "http://u:p@x" }] },
      "endpoints[0].url: must not carry credentials",
    ],
    [
      { version: 1, endpoints: [{ url: "http://[::1]:80" }, { url: "http://[::1]:80/" }] },
      "endpoints[1].url: duplicates endpoints[0].url",
    ],
    [{ version: 1, endpoints: [{ url: "http://x", state: "down" }] }, "endpoints[0].state: "],
    [
      { version: 1, endpoints: [], transport: { binding: "vpc-shop" } },
      "transport.binding: must be a Workers binding name",
    ],
    [
      { version: 1, endpoints: [], updatedAt: "yesterday" },
      "updatedAt: must be an RFC 3339 date-time",
    ],
    [{ version: 1, generation: 1.5, endpoints: [] }, "generation: must be a whole number"],
  ])("refuses %j", (doc, expected) => {
    const result = parsePoolText(JSON.stringify(doc));
    expect(result.ok).toBe(false);
    expect(!result.ok && result.problems.map(formatProblem)[0]).toContain(expected);
  });

  it('refuses an inline pool keyed "__proto__", which would vanish without a word', () => {
    const parsed = parseRoutesDocument(
      JSON.parse(
        '{"version":1,"routes":[{"name":"r","rules":[{"backendRefs":[{"pool":"__proto__"}]}]}],"pools":{"__proto__":{"endpoints":[{"url":"http://a.test"}]}}}',
      ),
    );
    expect(parsed).toEqual({
      ok: false,
      problems: [{ path: 'pools["__proto__"]', message: '"__proto__" cannot name a pool' }],
    });
  });
});

describe("parseRoutesTextInSlices", () => {
  const route = (name: string) => ({ name, rules: [{ backendRefs: [{ pool: "p" }] }] });
  const text = (names: string[]) => JSON.stringify({ version: 1, routes: names.map(route) });
  const names = Array.from({ length: 3 * ROUTES_PER_SLICE }, (_, i) => `r-${i}`);

  it("pauses between slices and gives the whole document's value", async () => {
    let pauses = 0;
    const sliced = await parseRoutesTextInSlices(text(names), async () => {
      pauses++;
    });
    expect(pauses).toBe(3);
    expect(sliced).toEqual(parseRoutesText(text(names)));
    expect(sliced.ok && sliced.value.routes).toHaveLength(names.length);
  });

  it("finds a name repeated across slices, where the whole document finds it", async () => {
    const repeated = [...names.slice(0, -1), "r-3"];
    const sliced = await parseRoutesTextInSlices(text(repeated), async () => {});
    expect(sliced.ok).toBe(false);
    expect(!sliced.ok && sliced.problems.map(formatProblem)).toEqual([
      `routes[${repeated.length - 1}].name: repeats the name of entry [3]`,
    ]);
    expect(sliced).toEqual(parseRoutesText(text(repeated)));
  });
});
