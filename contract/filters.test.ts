import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { parseRoutesDocument } from "./index.ts";

const document = (rules: unknown[], pools: Record<string, unknown> = {}) => ({
  version: 1,
  routes: [{ name: "r", rules }],
  pools: { p: { endpoints: [{ url: "https://p.example.com" }] }, ...pools },
});

function problems(rules: unknown[]): string[] {
  const parsed = parseRoutesDocument(document(rules));
  return parsed.ok ? [] : parsed.problems.map((p) => `${p.path}: ${p.message}`);
}

const toPool = [{ pool: "p" }];

/**
 * The `rules` of Gateway API conformance HTTPRoutes, `filters` copied as they are; only each
 * `backendRefs` entry (`name`, `port`) is replaced by a pool.
 */
const CONFORMANCE_RULES = `
- matches: [{ path: { type: PathPrefix, value: /set } }]
  filters:
  - type: RequestHeaderModifier
    requestHeaderModifier:
      set:
      - name: X-Header-Set
        value: set-overwrites-values
- matches: [{ path: { type: PathPrefix, value: /multiple } }]
  filters:
  - type: RequestHeaderModifier
    requestHeaderModifier:
      set:
      - { name: X-Header-Set-1, value: header-set-1 }
      - { name: X-Header-Set-2, value: header-set-2 }
      add:
      - { name: X-Header-Add-1, value: header-add-1 }
      - { name: X-Header-Add-2, value: header-add-2 }
      - { name: X-Header-Add-3, value: header-add-3 }
      remove:
      - X-Header-Remove-1
      - X-Header-Remove-2
- matches: [{ path: { type: PathPrefix, value: /response } }]
  filters:
  - type: ResponseHeaderModifier
    responseHeaderModifier:
      set: [{ name: X-Header-Set, value: set-overwrites-values }]
      add: [{ name: X-Header-Add, value: add-appends-values }]
      remove: [X-Header-Remove]
- matches: [{ path: { type: PathPrefix, value: /original-prefix } }]
  filters:
  - type: RequestRedirect
    requestRedirect:
      path:
        type: ReplacePrefixMatch
        replacePrefixMatch: /replacement-prefix
- matches: [{ path: { type: PathPrefix, value: /full-path-and-host } }]
  filters:
  - type: RequestRedirect
    requestRedirect:
      hostname: example.org
      path:
        type: ReplaceFullPath
        replaceFullPath: /replacement-full
- matches: [{ path: { type: PathPrefix, value: /scheme-https-and-port-8443 } }]
  filters:
  - type: RequestRedirect
    requestRedirect:
      scheme: https
      port: 8443
      statusCode: 301
- matches: [{ path: { type: PathPrefix, value: /prefix/one } }]
  filters:
  - type: URLRewrite
    urlRewrite:
      path:
        type: ReplacePrefixMatch
        replacePrefixMatch: /one
  backendRefs: [{ pool: p }]
- matches: [{ path: { type: PathPrefix, value: /full/rewrite-path-and-modify-headers } }]
  filters:
  - type: URLRewrite
    urlRewrite:
      path:
        type: ReplaceFullPath
        replaceFullPath: /test
  - type: RequestHeaderModifier
    requestHeaderModifier:
      set: [{ name: X-Header-Set, value: set-overwrites-values }]
      add: [{ name: X-Header-Add, value: header-val-1 }]
      remove: [X-Header-Remove]
  backendRefs: [{ pool: p }]
- matches: [{ path: { type: PathPrefix, value: /mirror } }]
  filters:
  - type: RequestMirror
    requestMirror:
      backendRef: { pool: p }
  - type: RequestMirror
    requestMirror:
      backendRef: { pool: p }
      percent: 35
  - type: RequestMirror
    requestMirror:
      backendRef: { pool: p }
      fraction: { numerator: 1, denominator: 3 }
  backendRefs: [{ pool: p }]
- matches: [{ path: { type: PathPrefix, value: /cors-1 } }]
  filters:
  - type: CORS
    cors:
      allowOrigins:
      - "https://www.foo.com"
      - "https://*.bar.com"
      allowMethods: [GET, OPTIONS]
      allowHeaders: ["x-header-1", "x-header-2"]
      exposeHeaders: ["x-header-3", "x-header-4"]
      allowCredentials: true
      maxAge: 3600
  backendRefs: [{ pool: p }]
- matches: [{ path: { type: PathPrefix, value: /cors-wildcard } }]
  filters:
  - type: CORS
    cors:
      allowOrigins: ["*"]
      allowMethods: ["*"]
      allowHeaders: ["*"]
  backendRefs: [{ pool: p }]
- matches: [{ path: { type: Exact, value: /direct-response/body } }]
  filters:
  - type: DirectResponse
    directResponse:
      statusCode: 200
      body:
        string: "hello, gateway"
- matches: [{ path: { type: Exact, value: /direct-response/no-body } }]
  filters:
  - type: DirectResponse
    directResponse:
      statusCode: 204
- matches: [{ path: { type: Exact, value: /direct-response/forbidden } }]
  filters:
  - type: DirectResponse
    directResponse:
      statusCode: 403
      body:
        string: "Forbidden"
`;

describe("filters in the routes document", () => {
  it("takes the filters of Gateway API's conformance HTTPRoutes as they are", () => {
    const rules = parseYaml(CONFORMANCE_RULES) as unknown[];
    expect(problems(rules)).toEqual([]);
    const parsed = parseRoutesDocument(document(rules));
    // Defaults as Gateway API has them: statusCode 302, CORS maxAge 5, fraction denominator 100.
    expect(
      parsed.ok && parsed.value.routes[0]?.rules[3]?.filters?.[0]?.requestRedirect?.statusCode,
    ).toBe(302);
    expect(parsed.ok && parsed.value.routes[0]?.rules[10]?.filters?.[0]?.cors?.maxAge).toBe(5);
  });

  it("takes header names that are also names of object members", () => {
    const names = ["constructor", "toString", "__proto__", "hasOwnProperty"];
    expect(
      problems([
        {
          filters: [
            {
              type: "RequestHeaderModifier",
              requestHeaderModifier: { set: names.map((name) => ({ name, value: "1" })) },
            },
          ],
          backendRefs: toPool,
        },
      ]),
    ).toEqual([]);
  });

  it("takes backendRef filters, and a rule without backendRefs", () => {
    expect(
      problems([
        {
          backendRefs: [
            {
              pool: "p",
              filters: [
                {
                  type: "RequestHeaderModifier",
                  requestHeaderModifier: { add: [{ name: "x-a", value: "1" }] },
                },
              ],
            },
          ],
        },
        { matches: [{ path: { value: "/none" } }] },
        { matches: [{ path: { value: "/empty" } }], backendRefs: [] },
      ]),
    ).toEqual([]);
  });

  it.each<[string, unknown, string]>([
    [
      "a redirect with backendRefs",
      {
        filters: [{ type: "RequestRedirect", requestRedirect: { scheme: "https" } }],
        backendRefs: toPool,
      },
      "routes[0].rules[0].filters[0].type: a RequestRedirect answers the request itself: the rule must have no backendRefs",
    ],
    [
      "a direct response with backendRefs",
      {
        filters: [{ type: "DirectResponse", directResponse: { statusCode: 503 } }],
        backendRefs: toPool,
      },
      "routes[0].rules[0].filters[0].type: a DirectResponse answers the request itself: the rule must have no backendRefs",
    ],
    [
      "a direct response on a backendRef",
      {
        backendRefs: [
          { pool: "p", filters: [{ type: "DirectResponse", directResponse: { statusCode: 503 } }] },
        ],
      },
      "routes[0].rules[0].backendRefs[0].filters[0].type: a DirectResponse answers for the whole rule: put it in the rule's filters, without backendRefs",
    ],
    [
      "a direct response and a mirror together",
      {
        filters: [
          { type: "RequestMirror", requestMirror: { backendRef: { pool: "p" } } },
          { type: "DirectResponse", directResponse: { statusCode: 200 } },
        ],
      },
      "routes[0].rules[0].filters[1].type: DirectResponse and RequestMirror cannot be used together: the DirectResponse answers the request itself",
    ],
    [
      "a direct response with a 1xx status",
      { filters: [{ type: "DirectResponse", directResponse: { statusCode: 101 } }] },
      "routes[0].rules[0].filters[0].directResponse.statusCode: must be an HTTP status from 200 to 599 (a Worker cannot answer with a 1xx)",
    ],
    [
      "a direct response of 204 with a body",
      {
        filters: [
          { type: "DirectResponse", directResponse: { statusCode: 204, body: { string: "x" } } },
        ],
      },
      "routes[0].rules[0].filters[0].directResponse.body: must not be set: a 204 response has no body",
    ],
    [
      "a direct response body over 4096 characters",
      {
        filters: [
          {
            type: "DirectResponse",
            directResponse: { statusCode: 200, body: { string: "x".repeat(4097) } },
          },
        ],
      },
      "routes[0].rules[0].filters[0].directResponse.body.string: must be at most 4096 characters",
    ],
    [
      "a redirect and a rewrite together",
      {
        filters: [
          { type: "URLRewrite", urlRewrite: {} },
          { type: "RequestRedirect", requestRedirect: {} },
        ],
      },
      "routes[0].rules[0].filters[1].type: RequestRedirect and URLRewrite cannot be used together",
    ],
    [
      "a repeated filter type",
      {
        filters: [
          { type: "CORS", cors: {} },
          { type: "CORS", cors: {} },
        ],
        backendRefs: toPool,
      },
      "routes[0].rules[0].filters[1].type: CORS filter cannot be repeated (already at [0])",
    ],
    [
      "ReplacePrefixMatch on an Exact match",
      {
        matches: [{ path: { type: "Exact", value: "/a" } }],
        filters: [
          {
            type: "URLRewrite",
            urlRewrite: { path: { type: "ReplacePrefixMatch", replacePrefixMatch: "/b" } },
          },
        ],
        backendRefs: toPool,
      },
      "routes[0].rules[0].filters[0].urlRewrite.path.type: ReplacePrefixMatch needs the rule to have exactly one match, of type PathPrefix: its match is Exact",
    ],
    [
      "ReplacePrefixMatch on a backendRef of a rule with two matches",
      {
        matches: [{ path: { value: "/a" } }, { path: { value: "/b" } }],
        backendRefs: [
          {
            pool: "p",
            filters: [
              {
                type: "URLRewrite",
                urlRewrite: { path: { type: "ReplacePrefixMatch", replacePrefixMatch: "/" } },
              },
            ],
          },
        ],
      },
      "routes[0].rules[0].backendRefs[0].filters[0].urlRewrite.path.type: ReplacePrefixMatch needs the rule to have exactly one match, of type PathPrefix: it has 2 matches",
    ],
    [
      "ExtensionRef",
      {
        filters: [
          { type: "ExtensionRef", extensionRef: { group: "example.net", kind: "Auth", name: "a" } },
        ],
        backendRefs: toPool,
      },
      "routes[0].rules[0].filters[0].type: ExtensionRef filters are not supported: Switchyard has no implementation-specific filters, and Gateway API forbids skipping one it cannot resolve",
    ],
    [
      "an unknown type",
      { filters: [{ type: "Rewrite" }], backendRefs: toPool },
      "routes[0].rules[0].filters[0].type: must be one of RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect, URLRewrite, RequestMirror, CORS, DirectResponse",
    ],
    [
      "settings of another type",
      {
        filters: [{ type: "CORS", cors: {}, requestMirror: { backendRef: { pool: "p" } } }],
        backendRefs: toPool,
      },
      "routes[0].rules[0].filters[0].requestMirror: must not be set when type is CORS",
    ],
    [
      "no settings for the type",
      { filters: [{ type: "RequestMirror" }], backendRefs: toPool },
      "routes[0].rules[0].filters[0].requestMirror: is required when type is RequestMirror",
    ],
    [
      "a URLRewrite hostname",
      {
        filters: [{ type: "URLRewrite", urlRewrite: { hostname: "one.example.org" } }],
        backendRefs: toPool,
      },
      "routes[0].rules[0].filters[0].urlRewrite.hostname: cannot be honoured: a Worker's fetch sends the host of the endpoint URL as Host, and Cloudflare refuses any other outside the worker's zone; give the pool endpoints with that host instead",
    ],
    [
      "a Host header edit",
      {
        filters: [
          {
            type: "RequestHeaderModifier",
            requestHeaderModifier: { set: [{ name: "host", value: "x" }] },
          },
        ],
        backendRefs: toPool,
      },
      "routes[0].rules[0].filters[0].requestHeaderModifier.set[0].name: host: the Host a backend sees is the host of its endpoint URL: Workers cannot send another (Cloudflare refuses a Host outside the worker's zone)",
    ],
    [
      "two actions on one header name",
      {
        filters: [
          {
            type: "ResponseHeaderModifier",
            responseHeaderModifier: { set: [{ name: "X-A", value: "1" }], remove: ["x-a"] },
          },
        ],
        backendRefs: toPool,
      },
      "routes[0].rules[0].filters[0].responseHeaderModifier.remove[0]: x-a is already edited at set[0]: one action per header name",
    ],
    [
      "a header value with a line break",
      {
        filters: [
          {
            type: "RequestHeaderModifier",
            requestHeaderModifier: { add: [{ name: "x-a", value: "1\r\nx-b: 2" }] },
          },
        ],
        backendRefs: toPool,
      },
      "routes[0].rules[0].filters[0].requestHeaderModifier.add[0].value: must be printable ASCII, words separated by single spaces or tabs",
    ],
    [
      "both percent and fraction",
      {
        filters: [
          {
            type: "RequestMirror",
            requestMirror: { backendRef: { pool: "p" }, percent: 5, fraction: { numerator: 1 } },
          },
        ],
        backendRefs: toPool,
      },
      "routes[0].rules[0].filters[0].requestMirror.fraction: only one of percent or fraction may be set",
    ],
    [
      "a fraction over 1",
      {
        filters: [
          {
            type: "RequestMirror",
            requestMirror: {
              backendRef: { pool: "p" },
              fraction: { numerator: 3, denominator: 2 },
            },
          },
        ],
        backendRefs: toPool,
      },
      "routes[0].rules[0].filters[0].requestMirror.fraction.numerator: must not be more than denominator",
    ],
    [
      "a redirect path without its value",
      {
        filters: [
          { type: "RequestRedirect", requestRedirect: { path: { type: "ReplaceFullPath" } } },
        ],
      },
      "routes[0].rules[0].filters[0].requestRedirect.path.replaceFullPath: is required when type is ReplaceFullPath",
    ],
    [
      "a relative rewrite path",
      {
        filters: [
          {
            type: "URLRewrite",
            urlRewrite: { path: { type: "ReplaceFullPath", replaceFullPath: "x" } },
          },
        ],
        backendRefs: toPool,
      },
      'routes[0].rules[0].filters[0].urlRewrite.path.replaceFullPath: must start with "/"',
    ],
    [
      "a 304 redirect",
      { filters: [{ type: "RequestRedirect", requestRedirect: { statusCode: 304 } }] },
      "routes[0].rules[0].filters[0].requestRedirect.statusCode: must be 301, 302, 303, 307 or 308",
    ],
    [
      '"*" among other origins',
      {
        filters: [{ type: "CORS", cors: { allowOrigins: ["*", "https://a.example"] } }],
        backendRefs: toPool,
      },
      'routes[0].rules[0].filters[0].cors.allowOrigins: cannot contain "*" alongside other entries',
    ],
    [
      "an origin with a path",
      {
        filters: [{ type: "CORS", cors: { allowOrigins: ["https://a.example/app"] } }],
        backendRefs: toPool,
      },
      'routes[0].rules[0].filters[0].cors.allowOrigins[0]: must be "*" or an origin such as "https://www.example.com" or "https://*.example.com"',
    ],
  ])("refuses %s, saying where", (_, rule, problem) => {
    expect(problems([rule])).toContain(problem);
  });

  it("refuses two actions on one header name however its case is written", () => {
    const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/);
    const recase = (text: string, mask: boolean[]) =>
      [...text].map((c, i) => (mask[i % mask.length] ? c.toUpperCase() : c)).join("");
    fc.assert(
      fc.property(
        name,
        fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }),
        fc.constantFrom("set", "add", "remove"),
        fc.constantFrom("set", "add", "remove"),
        (header, mask, first, second) => {
          const entry = (kind: string, n: string) =>
            kind === "remove" ? n : { name: n, value: "v" };
          const filter: Record<string, unknown[]> = {};
          filter[first] = [entry(first, `x-${header}`)];
          filter[second] = [...(filter[second] ?? []), entry(second, `X-${recase(header, mask)}`)];
          const found = problems([
            {
              filters: [{ type: "RequestHeaderModifier", requestHeaderModifier: filter }],
              backendRefs: toPool,
            },
          ]);
          expect(found.some((p) => p.endsWith("one action per header name"))).toBe(true);
        },
      ),
    );
  });
});
