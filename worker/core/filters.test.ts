import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { CorsFilter, HttpRouteFilter } from "../../contract/index.ts";
import {
  type CompiledCors,
  compileFilters,
  describeFilters,
  mirrored,
  originAllowed,
  preflightHeaders,
  redirectLocation,
  replacePrefix,
  responseCorsHeaders,
} from "./filters.ts";

const segment = fc.stringMatching(/^[a-z0-9_~-][a-z0-9._~-]{0,7}$/); // no "." or ".." segments: URLs resolve those
const pathOf = (segments: string[]) => `/${segments.join("/")}`;

function cors(filter: Partial<CorsFilter>): CompiledCors {
  const compiled = compileFilters(
    [{ type: "CORS", cors: { maxAge: 5, ...filter } } as HttpRouteFilter],
    undefined,
    () => undefined,
  );
  return compiled?.cors as CompiledCors;
}

describe("ReplacePrefixMatch", () => {
  it.each<[string, string, string, string]>([
    // Gateway API's HTTPPathModifier table.
    ["/foo/bar", "/foo", "/xyz", "/xyz/bar"],
    ["/foo/bar", "/foo", "/xyz/", "/xyz/bar"],
    ["/foo/bar", "/foo/", "/xyz", "/xyz/bar"],
    ["/foo/bar", "/foo/", "/xyz/", "/xyz/bar"],
    ["/foo", "/foo", "/xyz", "/xyz"],
    ["/foo/", "/foo", "/xyz", "/xyz/"],
    ["/foo/bar", "/foo", "", "/bar"],
    ["/foo/", "/foo", "", "/"],
    ["/foo", "/foo", "", "/"],
    ["/foo/", "/foo", "/", "/"],
    ["/foo", "/foo", "/", "/"],
    // Conformance: HTTPRouteRewritePath.
    ["/prefix/one/two", "/prefix/one", "/one", "/one/two"],
    ["/strip-prefix/three", "/strip-prefix", "/", "/three"],
    ["/anything", "/", "/base", "/base/anything"],
  ])("%s with prefix %s and %j gives %s", (path, prefix, replacement, expected) => {
    expect(replacePrefix(path, prefix, replacement)).toBe(expected);
  });

  it("replaces exactly the matched segments and keeps the rest", () => {
    fc.assert(
      fc.property(
        fc.array(segment, { minLength: 1, maxLength: 4 }),
        fc.array(segment, { maxLength: 4 }),
        fc.array(segment, { maxLength: 3 }),
        fc.boolean(),
        (prefix, rest, replacement, trailing) => {
          const path = pathOf([...prefix, ...rest]) + (trailing ? "/" : "");
          const out = replacePrefix(
            path,
            pathOf(prefix),
            replacement.length ? pathOf(replacement) : "",
          );
          const tail = path.slice(pathOf(prefix).length);
          expect(out.startsWith("/")).toBe(true);
          expect(out).toBe(`${replacement.length ? pathOf(replacement) : ""}${tail}` || "/");
          // Replacing a prefix by itself changes nothing.
          expect(replacePrefix(path, pathOf(prefix), pathOf(prefix))).toBe(path);
        },
      ),
    );
  });

  it("leaves a path that the prefix does not start on a segment boundary", () => {
    expect(replacePrefix("/foobar", "/foo", "/x")).toBe("/foobar");
    expect(replacePrefix("/other", "/foo", "/x")).toBe("/other");
  });
});

describe("redirect Location", () => {
  const scheme = fc.constantFrom("http", "https");
  const host = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}(\.[a-z]{2,5}){1,2}$/);
  const port = fc.integer({ min: 1, max: 65535 });

  it("is a URL with the filter's parts, else the request's, and no well-known port", () => {
    fc.assert(
      fc.property(
        scheme,
        host,
        port,
        fc.array(segment, { maxLength: 3 }),
        fc.record(
          {
            scheme: scheme,
            hostname: host,
            port: port,
            status: fc.constantFrom(301, 302, 303, 307, 308),
          },
          { requiredKeys: ["status"] },
        ),
        (requestScheme, requestHost, requestPort, segments, filter) => {
          const location = redirectLocation(
            {
              scheme: filter.scheme as "http" | "https" | undefined,
              hostname: filter.hostname,
              port: filter.port,
              path: undefined,
              status: filter.status,
            },
            {
              scheme: requestScheme,
              host: requestHost,
              port: requestPort,
              path: pathOf(segments),
              search: "?q=1",
            },
          );
          const url = new URL(location);
          const wantScheme = filter.scheme ?? requestScheme;
          const wantPort =
            filter.port ??
            (filter.scheme !== undefined ? (wantScheme === "https" ? 443 : 80) : requestPort);
          expect(url.protocol).toBe(`${wantScheme}:`);
          expect(url.hostname).toBe(filter.hostname ?? requestHost);
          expect(url.port).toBe(
            wantPort === (wantScheme === "https" ? 443 : 80) ? "" : String(wantPort),
          );
          expect(url.pathname).toBe(pathOf(segments));
          expect(url.search).toBe("?q=1");
        },
      ),
    );
  });
});

describe("CORS", () => {
  it("matches origins by scheme, host and port, with 80 and 443 implied", () => {
    const c = cors({
      allowOrigins: ["https://www.foo.com", "https://*.bar.com", "http://local.test:8080"],
    });
    expect(originAllowed(c, "https://www.foo.com")).toBe(true);
    expect(originAllowed(c, "https://www.foo.com:443")).toBe(true);
    expect(originAllowed(c, "HTTPS://WWW.FOO.COM")).toBe(true);
    expect(originAllowed(c, "http://www.foo.com")).toBe(false);
    expect(originAllowed(c, "https://www.foo.com:8443")).toBe(false);
    expect(originAllowed(c, "https://a.b.bar.com")).toBe(true);
    expect(originAllowed(c, "https://bar.com")).toBe(false);
    expect(originAllowed(c, "https://evilbar.com")).toBe(false);
    expect(originAllowed(c, "http://local.test:8080")).toBe(true);
    expect(originAllowed(c, "http://local.test")).toBe(false);
    expect(originAllowed(c, "null")).toBe(false);
  });

  it("never hands a credentialed response to Origin: null, even under *", () => {
    expect(originAllowed(cors({ allowOrigins: ["*"], allowCredentials: true }), "null")).toBe(
      false,
    );
    expect(originAllowed(cors({ allowOrigins: ["*"] }), "null")).toBe(true); // answered "*"
    const headers = responseCorsHeaders(
      cors({ allowOrigins: ["*"], allowCredentials: true }),
      "null",
    );
    expect(headers).toEqual([["vary", "Origin"]]);
  });

  it("never answers * with credentials, and nothing to an origin it does not allow", () => {
    const list = fc.constantFrom<string[] | undefined>(undefined, ["*"], ["GET", "PUT"]);
    fc.assert(
      fc.property(
        fc.constantFrom<string[]>(["*"], ["https://a.example"], ["https://*.example"]),
        list,
        fc.constantFrom<string[] | undefined>(undefined, ["*"], ["x-a", "x-b"]),
        fc.boolean(),
        fc.constantFrom("https://a.example", "https://b.a.example", "https://c.test", "null"),
        fc.option(fc.constantFrom("x-a", "x-a, x-b"), { nil: null }),
        (allowOrigins, allowMethods, allowHeaders, allowCredentials, origin, requestHeaders) => {
          const c = cors({
            allowOrigins,
            allowMethods: allowMethods as CorsFilter["allowMethods"],
            allowHeaders,
            exposeHeaders: ["*"],
            allowCredentials,
          });
          const request = { method: "OPTIONS", origin, requestMethod: "PUT", requestHeaders };
          const headers = new Map(preflightHeaders(c, request));
          const actual = new Map(responseCorsHeaders(c, origin));
          if (!originAllowed(c, origin)) {
            expect([...headers.keys()]).toEqual(["vary"]);
            expect([...actual.keys()]).toEqual(["vary"]);
            return;
          }
          for (const set of [headers, actual]) {
            expect(set.get("access-control-allow-origin")).toBe(
              allowOrigins[0] === "*" && !allowCredentials ? "*" : origin,
            );
            expect(set.has("access-control-allow-credentials")).toBe(allowCredentials);
            if (allowCredentials) {
              for (const [name, value] of set)
                if (name.startsWith("access-control-")) expect(value).not.toBe("*");
            }
          }
          if (allowMethods === undefined)
            expect(headers.has("access-control-allow-methods")).toBe(false);
          if (allowCredentials && allowMethods?.[0] === "*")
            expect(headers.get("access-control-allow-methods")).toBe("PUT");
          if (allowCredentials && allowHeaders?.[0] === "*")
            expect(headers.get("access-control-allow-headers")).toBe(requestHeaders ?? undefined);
          expect(headers.get("access-control-max-age")).toBe("5");
        },
      ),
    );
  });
});

describe("RequestMirror shares", () => {
  it("mirror numerator/denominator of requests", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 0, max: 1000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (denominator, n, random) => {
          const numerator = n % (denominator + 1);
          const mirror = { poolName: "m", pool: undefined, numerator, denominator };
          expect(mirrored(mirror, random)).toBe(random < numerator / denominator);
          if (numerator === 0) expect(mirrored(mirror, random)).toBe(false);
          if (numerator === denominator) expect(mirrored(mirror, random)).toBe(true);
        },
      ),
    );
  });
});

describe("compileFilters", () => {
  it("compiles no filters to nothing, so a plain rule pays one check", () => {
    expect(compileFilters(undefined, "/", () => undefined)).toBeUndefined();
    expect(compileFilters([], "/", () => undefined)).toBeUndefined();
  });

  it("resolves mirror pools and reads percent, fraction and the default", () => {
    const compiled = compileFilters(
      [
        { type: "RequestMirror", requestMirror: { backendRef: { pool: "a" } } },
        { type: "RequestMirror", requestMirror: { backendRef: { pool: "b" }, percent: 25 } },
        {
          type: "RequestMirror",
          requestMirror: { backendRef: { pool: "c" }, fraction: { numerator: 1, denominator: 3 } },
        },
      ],
      undefined,
      (name) => `pool ${name}`,
    );
    expect(compiled?.mirrors).toEqual([
      { poolName: "a", pool: "pool a", numerator: 100, denominator: 100 },
      { poolName: "b", pool: "pool b", numerator: 25, denominator: 100 },
      { poolName: "c", pool: "pool c", numerator: 1, denominator: 3 },
    ]);
  });

  it("describes what each filter does to a request, for explain", () => {
    const lines = describeFilters(
      [
        {
          type: "RequestHeaderModifier",
          requestHeaderModifier: { set: [{ name: "X-A", value: "1" }], remove: ["X-B"] },
        },
        {
          type: "URLRewrite",
          urlRewrite: { path: { type: "ReplacePrefixMatch", replacePrefixMatch: "/v2" } },
        },
        { type: "RequestMirror", requestMirror: { backendRef: { pool: "shadow" }, percent: 10 } },
        {
          type: "CORS",
          cors: { allowOrigins: ["https://a.example"], allowCredentials: true, maxAge: 5 },
        },
      ],
      "/api",
      { scheme: "https", host: "shop.example.com", port: 443, path: "/api/items", search: "" },
    );
    expect(lines).toEqual([
      "RequestHeaderModifier: set X-A: 1; remove X-B",
      "URLRewrite: path /api/items → /v2/items",
      "RequestMirror: 10% of requests to pool shadow",
      "CORS: origins https://a.example, with credentials; preflights answered at the edge",
    ]);
    expect(
      describeFilters(
        [{ type: "RequestRedirect", requestRedirect: { scheme: "https", statusCode: 301 } }],
        "/",
        { scheme: "http", host: "shop.example.com", port: 80, path: "/a", search: "?b=1" },
      ),
    ).toEqual(["RequestRedirect: 301 to https://shop.example.com/a?b=1"]);
    const request = { scheme: "https", host: "a", port: 443, path: "/", search: "" };
    expect(
      describeFilters(
        [
          {
            type: "DirectResponse",
            directResponse: { statusCode: 403, body: { string: "Nein, ü" } },
          },
          { type: "DirectResponse", directResponse: { statusCode: 204 } },
        ],
        undefined,
        request,
      ),
    ).toEqual([
      "DirectResponse: 403, a body of 8 bytes; no backend",
      "DirectResponse: 204, no body; no backend",
    ]);
  });

  it("compiles a DirectResponse to its status and body", () => {
    const compiled = compileFilters(
      [{ type: "DirectResponse", directResponse: { statusCode: 503, body: { string: "later" } } }],
      undefined,
      () => undefined,
    );
    expect(compiled?.direct).toEqual({ status: 503, body: "later" });
    expect(
      compileFilters(
        [{ type: "DirectResponse", directResponse: { statusCode: 204 } }],
        undefined,
        () => undefined,
      )?.direct,
    ).toEqual({ status: 204, body: null });
  });
});
