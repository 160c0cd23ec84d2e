import { beforeAll, describe, expect, it } from "vitest";
import type { Echo } from "../../local/backends.ts";
import { backends, CookieJar, harness, hits, lastRequest, pool, putRoutes } from "./harness.ts";

/**
 * HTTPRoute filters in workerd against real loopback backends. The rules copy the `filters` of
 * Gateway API's conformance HTTPRoutes (HTTPRouteRequestHeaderModifier, …ResponseHeaderModifier,
 * …RedirectScheme/HostAndStatus/Path/Port/PortAndScheme, …RewritePath, …RequestMirror, …CORS)
 * as they are, and the cases assert what those tests expect.
 */

const b = backends();

/** A rule on one PathPrefix with these filters, to pool "a" unless told otherwise. */
function prefixRule(prefix: string, filters: unknown[], backendRefs: unknown[] = [{ pool: "a" }]) {
  return { matches: [{ path: { type: "PathPrefix", value: prefix } }], filters, backendRefs };
}

function routes(rules: unknown[], pools: Record<string, unknown> = {}) {
  return {
    version: 1,
    routes: [{ name: "conformance", rules }],
    pools: { a: pool(b.a), b: pool(b.b), c: pool(b.c), ...pools },
  };
}

/** Header values compared as the conformance suite does: whitespace after commas ignored. */
function squeeze(value: unknown): string {
  return String(value).replace(/,\s+/g, ",");
}

describe("RequestHeaderModifier (HTTPRouteRequestHeaderModifier)", () => {
  const h = harness();
  const header = (filter: unknown) => [
    { type: "RequestHeaderModifier", requestHeaderModifier: filter },
  ];
  beforeAll(() =>
    putRoutes(
      routes([
        prefixRule(
          "/set",
          header({ set: [{ name: "X-Header-Set", value: "set-overwrites-values" }] }),
        ),
        prefixRule(
          "/add",
          header({ add: [{ name: "X-Header-Add", value: "add-appends-values" }] }),
        ),
        prefixRule("/remove", header({ remove: ["X-Header-Remove"] })),
        prefixRule(
          "/multiple",
          header({
            set: [
              { name: "X-Header-Set-1", value: "header-set-1" },
              { name: "X-Header-Set-2", value: "header-set-2" },
            ],
            add: [
              { name: "X-Header-Add-1", value: "header-add-1" },
              { name: "X-Header-Add-2", value: "header-add-2" },
              { name: "X-Header-Add-3", value: "header-add-3" },
            ],
            remove: ["X-Header-Remove-1", "X-Header-Remove-2"],
          }),
        ),
        prefixRule(
          "/case-insensitivity",
          header({
            set: [{ name: "X-Header-Set", value: "header-set" }],
            add: [{ name: "X-Header-Add", value: "header-add" }],
            remove: ["X-Header-Remove"],
          }),
        ),
      ]),
    ),
  );

  const echo = async (path: string, headers: Record<string, string>) => {
    const response = await h.fetch(`http://gw.test${path}`, { headers });
    expect(response.status).toBe(200);
    return ((await response.json()) as Echo).headers;
  };

  it.each<[string, Record<string, string>, Record<string, string>, string[]]>([
    ["/set", { "Some-Other-Header": "val" }, { "x-header-set": "set-overwrites-values" }, []],
    [
      "/set",
      { "Some-Other-Header": "val", "X-Header-Set": "some-other-value" },
      { "x-header-set": "set-overwrites-values", "some-other-header": "val" },
      [],
    ],
    ["/add", { "Some-Other-Header": "val" }, { "x-header-add": "add-appends-values" }, []],
    [
      "/add",
      { "X-Header-Add": "some-other-value" },
      { "x-header-add": "some-other-value,add-appends-values" },
      [],
    ],
    ["/remove", { "X-Header-Remove": "val" }, {}, ["x-header-remove"]],
    [
      "/multiple",
      {
        "X-Header-Set-2": "set-val-2",
        "X-Header-Add-2": "add-val-2",
        "X-Header-Remove-2": "remove-val-2",
        "Another-Header": "another-header-val",
      },
      {
        "x-header-set-1": "header-set-1",
        "x-header-set-2": "header-set-2",
        "x-header-add-1": "header-add-1",
        "x-header-add-2": "add-val-2,header-add-2",
        "x-header-add-3": "header-add-3",
        "another-header": "another-header-val",
      },
      ["x-header-remove-1", "x-header-remove-2"],
    ],
    [
      "/case-insensitivity",
      {
        "x-header-set": "original-val-set",
        "x-header-add": "original-val-add",
        "x-header-remove": "original-val-remove",
        "Another-Header": "another-header-val",
      },
      {
        "x-header-set": "header-set",
        "x-header-add": "original-val-add,header-add",
        "another-header": "another-header-val",
      },
      ["x-header-remove"],
    ],
  ])("%s with %j", async (path, sent, expected, absent) => {
    const got = await echo(path, sent);
    for (const [name, value] of Object.entries(expected)) expect(squeeze(got[name])).toBe(value);
    for (const name of absent) expect(got[name]).toBeUndefined();
  });

  it("edits after the worker's own headers: X-Forwarded-* can be removed or replaced", async () => {
    await putRoutes(
      routes([
        prefixRule("/", [
          {
            type: "RequestHeaderModifier",
            requestHeaderModifier: {
              set: [{ name: "X-Forwarded-Proto", value: "https" }],
              remove: ["X-Forwarded-Host"],
            },
          },
        ]),
      ]),
    );
    h.advance(60_000);
    await h.fetch("http://gw.test/"); // served by the old snapshot; loads the new one
    const got = await echo("/", {});
    expect(got["x-forwarded-proto"]).toBe("https");
    expect(got["x-forwarded-host"]).toBeUndefined();
  });
});

describe("ResponseHeaderModifier (HTTPRouteResponseHeaderModifier)", () => {
  const h = harness();
  beforeAll(() =>
    putRoutes(
      routes([
        prefixRule("/response", [
          {
            type: "ResponseHeaderModifier",
            responseHeaderModifier: {
              set: [{ name: "X-Backend", value: "hidden" }],
              add: [{ name: "Strict-Transport-Security", value: "max-age=31536000" }],
              remove: ["Content-Type"],
            },
          },
        ]),
        prefixRule("/plain", []),
      ]),
    ),
  );

  it("sets, adds and removes headers of the backend's response", async () => {
    const response = await h.fetch("http://gw.test/response");
    expect(response.status).toBe(200);
    expect(response.headers.get("x-backend")).toBe("hidden");
    expect(response.headers.get("strict-transport-security")).toBe("max-age=31536000");
    expect(response.headers.has("content-type")).toBe(false);
    expect(((await response.json()) as Echo).backend).toBe("a");
  });

  it("leaves the responses of other rules alone", async () => {
    const response = await h.fetch("http://gw.test/plain");
    expect(response.headers.get("x-backend")).toBe("a");
    expect(response.headers.get("content-type")).toBe("application/json");
  });
});

describe("RequestRedirect (HTTPRouteRedirect*)", () => {
  const h = harness();
  const redirect = (prefix: string, filter: unknown) =>
    prefixRule(prefix, [{ type: "RequestRedirect", requestRedirect: filter }], []);
  beforeAll(() =>
    putRoutes(
      routes([
        redirect("/scheme", { scheme: "https" }),
        redirect("/scheme-and-status", { scheme: "https", statusCode: 301 }),
        redirect("/hostname-redirect", { hostname: "example.org" }),
        redirect("/host-and-status", { hostname: "example.org", statusCode: 301 }),
        redirect("/original-prefix", {
          path: { type: "ReplacePrefixMatch", replacePrefixMatch: "/replacement-prefix" },
        }),
        redirect("/full-path-original", {
          path: { type: "ReplaceFullPath", replaceFullPath: "/full-path-replacement" },
        }),
        redirect("/path-and-host", {
          hostname: "example.org",
          path: { type: "ReplacePrefixMatch", replacePrefixMatch: "/replacement-prefix" },
        }),
        redirect("/path-and-status", {
          path: { type: "ReplacePrefixMatch", replacePrefixMatch: "/replacement-prefix" },
          statusCode: 301,
        }),
        redirect("/port", { port: 8083 }),
        redirect("/port-and-host-and-status", {
          port: 8083,
          hostname: "example.org",
          statusCode: 302,
        }),
        redirect("/scheme-nil-and-port-nil", {}),
        redirect("/scheme-nil-and-port-80", { port: 80 }),
        redirect("/scheme-nil-and-port-8080", { port: 8080 }),
        redirect("/scheme-https-and-port-nil", { scheme: "https" }),
        redirect("/scheme-https-and-port-443", { scheme: "https", port: 443 }),
        redirect("/scheme-https-and-port-8443", { scheme: "https", port: 8443 }),
        redirect("/status-303", {
          statusCode: 303,
          path: { type: "ReplaceFullPath", replaceFullPath: "/see" },
        }),
        redirect("/status-307", { statusCode: 307, scheme: "https" }),
        redirect("/status-308", { statusCode: 308, scheme: "https" }),
        // A rule with retries and a redirect: the redirect answers, nothing is tried.
        {
          ...redirect("/with-retries", { hostname: "example.org" }),
          retry: { attempts: 3, codes: [503] },
        },
      ]),
    ),
  );

  it.each<[string, number, string]>([
    ["http://gw.test/scheme", 302, "https://gw.test/scheme"],
    ["http://gw.test/scheme-and-status", 301, "https://gw.test/scheme-and-status"],
    ["http://gw.test/hostname-redirect", 302, "http://example.org/hostname-redirect"],
    ["http://gw.test/host-and-status", 301, "http://example.org/host-and-status"],
    ["http://gw.test/original-prefix/lemon", 302, "http://gw.test/replacement-prefix/lemon"],
    ["http://gw.test/original-prefix", 302, "http://gw.test/replacement-prefix"],
    ["http://gw.test/full-path-original/x", 302, "http://gw.test/full-path-replacement"],
    ["http://gw.test/path-and-host", 302, "http://example.org/replacement-prefix"],
    ["http://gw.test/path-and-status", 301, "http://gw.test/replacement-prefix"],
    ["http://gw.test/port", 302, "http://gw.test:8083/port"],
    [
      "http://gw.test/port-and-host-and-status",
      302,
      "http://example.org:8083/port-and-host-and-status",
    ],
    // Ports: the listener's when neither scheme nor port is set; well-known ones left out.
    ["http://gw.test/scheme-nil-and-port-nil", 302, "http://gw.test/scheme-nil-and-port-nil"],
    [
      "http://gw.test:8080/scheme-nil-and-port-nil",
      302,
      "http://gw.test:8080/scheme-nil-and-port-nil",
    ],
    ["http://gw.test/scheme-nil-and-port-80", 302, "http://gw.test/scheme-nil-and-port-80"],
    [
      "http://gw.test/scheme-nil-and-port-8080",
      302,
      "http://gw.test:8080/scheme-nil-and-port-8080",
    ],
    [
      "http://gw.test:8080/scheme-https-and-port-nil",
      302,
      "https://gw.test/scheme-https-and-port-nil",
    ],
    ["http://gw.test/scheme-https-and-port-443", 302, "https://gw.test/scheme-https-and-port-443"],
    [
      "http://gw.test/scheme-https-and-port-8443",
      302,
      "https://gw.test:8443/scheme-https-and-port-8443",
    ],
    ["https://gw.test/scheme-nil-and-port-nil", 302, "https://gw.test/scheme-nil-and-port-nil"],
    ["http://gw.test/status-303?q=1", 303, "http://gw.test/see?q=1"],
    ["http://gw.test/status-307", 307, "https://gw.test/status-307"],
    ["http://gw.test/status-308", 308, "https://gw.test/status-308"],
    ["http://gw.test/with-retries", 302, "http://example.org/with-retries"],
  ])("%s answers %i to %s, touching no backend", async (url, status, location) => {
    const before = await Promise.all([hits(b.a), hits(b.b), hits(b.c)]);
    const response = await h.fetch(url);
    expect(response.status).toBe(status);
    expect(response.headers.get("location")).toBe(location);
    expect(await Promise.all([hits(b.a), hits(b.b), hits(b.c)])).toEqual(before);
  });

  it("keeps the query and the Host's case-insensitive name", async () => {
    const response = await h.fetch("http://GW.test/scheme?a=1&b=2");
    expect(response.headers.get("location")).toBe("https://gw.test/scheme?a=1&b=2");
  });
});

describe("DirectResponse (HTTPRouteDirectResponse)", () => {
  const h = harness();
  const exact = (value: string, filters: unknown[]) => ({
    matches: [{ path: { type: "Exact", value } }],
    filters,
  });
  const direct = (directResponse: unknown) => ({ type: "DirectResponse", directResponse });
  beforeAll(() =>
    putRoutes(
      routes([
        exact("/direct-response/body", [
          direct({ statusCode: 200, body: { string: "hello, gateway" } }),
        ]),
        exact("/direct-response/no-body", [direct({ statusCode: 204 })]),
        exact("/direct-response/forbidden", [
          direct({ statusCode: 403, body: { string: "Forbidden" } }),
        ]),
        // GEP-2826's pattern for a JSON body: a ResponseHeaderModifier sets its Content-Type.
        exact("/api/gone", [
          direct({
            statusCode: 410,
            body: { string: '{"error":"this endpoint has been removed"}' },
          }),
          {
            type: "ResponseHeaderModifier",
            responseHeaderModifier: { set: [{ name: "Content-Type", value: "application/json" }] },
          },
        ]),
      ]),
    ),
  );

  it.each([
    ["/direct-response/body", 200, "hello, gateway"],
    ["/direct-response/no-body", 204, ""],
    ["/direct-response/forbidden", 403, "Forbidden"],
  ])("answers %s with %i and its body, whatever the request sends", async (path, status, body) => {
    const response = await h.fetch(`http://gw.test${path}`, { method: "POST", body: "ignored" });
    expect(response.status).toBe(status);
    expect(await response.text()).toBe(body);
  });

  it("takes its Content-Type from a ResponseHeaderModifier, text/plain otherwise", async () => {
    const gone = await h.fetch("http://gw.test/api/gone");
    expect(gone.status).toBe(410);
    expect(gone.headers.get("content-type")).toBe("application/json");
    expect(await gone.json()).toEqual({ error: "this endpoint has been removed" });
    const plain = await h.fetch("http://gw.test/direct-response/body");
    expect(plain.headers.get("content-type")).toMatch(/^text\/plain/);
  });
});

describe("URLRewrite (HTTPRouteRewritePath)", () => {
  const h = harness();
  const rewrite = (prefix: string, path: unknown, more: unknown[] = []) =>
    prefixRule(prefix, [{ type: "URLRewrite", urlRewrite: { path } }, ...more]);
  /** The header filter both "rewrite-path-and-modify-headers" rules of the conformance route carry. */
  const modifyHeaders = [
    {
      type: "RequestHeaderModifier",
      requestHeaderModifier: {
        set: [{ name: "X-Header-Set", value: "set-overwrites-values" }],
        add: [{ name: "X-Header-Add", value: "header-val-1" }],
        remove: ["X-Header-Remove"],
      },
    },
  ];
  beforeAll(() =>
    putRoutes(
      routes([
        rewrite("/prefix/one", { type: "ReplacePrefixMatch", replacePrefixMatch: "/one" }),
        rewrite("/full/one", { type: "ReplaceFullPath", replaceFullPath: "/one" }),
        rewrite(
          "/full/rewrite-path-and-modify-headers",
          { type: "ReplaceFullPath", replaceFullPath: "/test" },
          modifyHeaders,
        ),
        rewrite(
          "/prefix/rewrite-path-and-modify-headers",
          {
            type: "ReplacePrefixMatch",
            replacePrefixMatch: "/prefix",
          },
          modifyHeaders,
        ),
        rewrite("/strip-prefix", { type: "ReplacePrefixMatch", replacePrefixMatch: "/" }),
      ]),
    ),
  );

  it.each<[string, string]>([
    ["/prefix/one/two", "/one/two"],
    ["/prefix/one", "/one"],
    ["/prefix/one/", "/one/"],
    ["/full/one/two", "/one"],
    ["/full/one/two?q=1", "/one?q=1"],
    ["/strip-prefix/three", "/three"],
    ["/strip-prefix", "/"],
    ["/strip-prefix/three?x=y", "/three?x=y"],
    ["/prefix/rewrite-path-and-modify-headers/one", "/prefix/one"],
  ])("%s reaches the backend as %s", async (path, upstream) => {
    const response = await h.fetch(`http://gw.test${path}`);
    expect(response.status).toBe(200);
    expect(((await response.json()) as Echo).path).toBe(upstream);
  });

  it("rewrites the path and edits the headers together", async () => {
    const response = await h.fetch("http://gw.test/full/rewrite-path-and-modify-headers/test", {
      headers: { "X-Header-Add": "header-val-0", "X-Header-Remove": "x" },
    });
    const echo = (await response.json()) as Echo;
    expect(echo.path).toBe("/test");
    expect(echo.headers["x-header-set"]).toBe("set-overwrites-values");
    expect(squeeze(echo.headers["x-header-add"])).toBe("header-val-0,header-val-1");
    expect(echo.headers["x-header-remove"]).toBeUndefined();
  });
});

describe("RequestMirror (HTTPRouteRequestMirror)", () => {
  const h = harness();
  const mirror = (pool: string, share: Record<string, unknown> = {}) => ({
    type: "RequestMirror",
    requestMirror: { backendRef: { pool }, ...share },
  });
  beforeAll(() =>
    putRoutes(
      routes(
        [
          prefixRule("/mirror", [mirror("b")]),
          prefixRule("/multiple", [mirror("b"), mirror("c")]),
          prefixRule("/none", [mirror("b", { percent: 0 })]),
          prefixRule("/fraction-none", [
            mirror("b", { fraction: { numerator: 0, denominator: 10 } }),
          ]),
          prefixRule("/down", [mirror("down")]),
          prefixRule("/missing", [mirror("nowhere")]),
          { ...prefixRule("/hang", [mirror("hang")]), timeouts: { backendRequest: "300ms" } },
          { ...prefixRule("/streamed", [mirror("b")]), retry: { attempts: 0, bodyBufferBytes: 4 } },
          {
            ...prefixRule("/rewritten", [
              mirror("b"),
              {
                type: "URLRewrite",
                urlRewrite: { path: { type: "ReplaceFullPath", replaceFullPath: "/new" } },
              },
              {
                type: "RequestHeaderModifier",
                requestHeaderModifier: { set: [{ name: "X-Mirrored-Too", value: "yes" }] },
              },
            ]),
          },
        ],
        { down: pool(b.closed), hang: pool(b.hang) },
      ),
    ),
  );

  it("sends a copy to the mirror pool and serves the client from its backend", async () => {
    const before = await hits(b.b);
    const response = await h.fetch("http://gw.test/mirror/x?y=1", {
      method: "POST",
      body: "hello mirror",
      headers: { "x-test": "1" },
    });
    expect(response.status).toBe(200);
    const echo = (await response.json()) as Echo;
    expect(echo.backend).toBe("a");
    expect(echo.body).toBe("hello mirror");
    expect(await hits(b.b)).toBe(before + 1);
    const copy = await lastRequest(b.b);
    expect(copy).toMatchObject({ method: "POST", path: "/mirror/x?y=1", body: "hello mirror" });
    expect(copy?.headers["x-test"]).toBe("1");
    expect(copy?.headers["x-request-id"]).toBe(echo.headers["x-request-id"]);
  });

  it("mirrors to every RequestMirror of the rule", async () => {
    const before = await Promise.all([hits(b.b), hits(b.c)]);
    expect((await h.fetch("http://gw.test/multiple")).status).toBe(200);
    expect(await Promise.all([hits(b.b), hits(b.c)])).toEqual(before.map((n) => n + 1));
  });

  it("mirrors nothing at percent 0 or a zero fraction", async () => {
    const before = await hits(b.b);
    await h.fetch("http://gw.test/none");
    await h.fetch("http://gw.test/fraction-none");
    expect(await hits(b.b)).toBe(before);
  });

  it("a mirror pool that is down or missing neither fails nor changes the client's answer", async () => {
    for (const path of ["/down", "/missing"]) {
      const response = await h.fetch(`http://gw.test${path}`);
      expect(response.status).toBe(200);
      expect(((await response.json()) as Echo).backend).toBe("a");
    }
    expect(h.logs).toContainEqual(
      expect.objectContaining({
        message: "mirrored request failed",
        fields: expect.objectContaining({ pool: "down" }),
      }),
    );
    expect(h.logs).toContainEqual(
      expect.objectContaining({
        message: "request not mirrored",
        fields: expect.objectContaining({ pool: "nowhere", reason: "no such pool" }),
      }),
    );
  });

  it("counts a mirror's body in the isolate's buffer budget until the mirror is done with it", async () => {
    const body = "x".repeat(10_000);
    const { response, background } = await h.fetchAndBackground("http://gw.test/hang", {
      method: "PUT",
      body,
    });
    expect(response.status).toBe(200);
    await response.body?.cancel();
    // The client has its answer; the hanging mirror still holds the body.
    expect(h.state.buffers.inUse).toBe(body.length);
    await background;
    expect(h.state.buffers.inUse).toBe(0);
  });

  it("never delays the client: a mirror that hangs is still pending when the answer is out", async () => {
    const { response, background } = await h.fetchAndBackground("http://gw.test/hang");
    let settled = false;
    const done = background.then(() => {
      settled = true;
    });
    expect(response.status).toBe(200);
    expect(((await response.json()) as Echo).backend).toBe("a");
    expect(settled).toBe(false);
    await done; // the mirror gives up after the rule's backendRequest timeout
    expect(h.logs).toContainEqual(
      expect.objectContaining({
        message: "mirrored request failed",
        fields: expect.objectContaining({ pool: "hang" }),
      }),
    );
  });

  it("mirrors a body too large to buffer without it, and says so", async () => {
    const response = await h.fetch("http://gw.test/streamed", {
      method: "POST",
      body: "longer than four",
    });
    expect(((await response.json()) as Echo).body).toBe("longer than four");
    const copy = await lastRequest(b.b);
    expect(copy).toMatchObject({ path: "/streamed", body: "" });
    expect(h.logs).toContainEqual(
      expect.objectContaining({ message: "request mirrored without its body" }),
    );
  });

  it("sends the mirror the path and headers the backend gets", async () => {
    await h.fetch("http://gw.test/rewritten/old");
    const copy = await lastRequest(b.b);
    expect(copy?.path).toBe("/new");
    expect(copy?.headers["x-mirrored-too"]).toBe("yes");
  });
});

describe("CORS (HTTPRouteCORS)", () => {
  const h = harness();
  const cors = (filter: unknown) => [{ type: "CORS", cors: filter }];
  beforeAll(() =>
    putRoutes(
      routes(
        [
          prefixRule(
            "/cors-1",
            cors({
              allowOrigins: ["https://www.foo.com", "https://*.bar.com"],
              allowMethods: ["GET", "OPTIONS"],
              allowHeaders: ["x-header-1", "x-header-2"],
              exposeHeaders: ["x-header-3", "x-header-4"],
              allowCredentials: true,
              maxAge: 3600,
            }),
          ),
          prefixRule(
            "/cors-2",
            cors({ allowOrigins: ["https://www.foo.com"], allowMethods: ["*"] }),
          ),
          prefixRule(
            "/cors-wildcard-origin",
            cors({ allowOrigins: ["*"], allowMethods: ["PUT"], allowCredentials: false }),
          ),
          prefixRule(
            "/cors-wildcard-methods-headers",
            cors({
              allowOrigins: ["https://other.foo.com"],
              allowMethods: ["*"],
              allowHeaders: ["*"],
              allowCredentials: true,
            }),
          ),
          prefixRule(
            "/cors-wildcard-methods-headers-unauth",
            cors({
              allowOrigins: ["https://other.foo.com"],
              allowMethods: ["*"],
              allowHeaders: ["*"],
            }),
          ),
          // CORS on a rule without backends: preflights are still answered; the rest is a 500.
          prefixRule("/cors-only", cors({ allowOrigins: ["https://www.foo.com"] }), []),
          // Its one endpoint refuses connections: the worker answers 503 itself.
          prefixRule("/cors-down", cors({ allowOrigins: ["https://www.foo.com"] }), [
            { pool: "down" },
          ]),
          // The backendRef's CORS filter, on a pool KV does not hold.
          prefixRule(
            "/cors-ref-missing",
            [],
            [{ pool: "missing", filters: cors({ allowOrigins: ["https://ref.foo.com"] }) }],
          ),
        ],
        { down: pool(b.closed) },
      ),
    ),
  );

  const preflight = (path: string, origin: string, method: string, headers?: string) =>
    h.fetch(`http://gw.test${path}`, {
      method: "OPTIONS",
      headers: {
        origin,
        "access-control-request-method": method,
        ...(headers ? { "access-control-request-headers": headers } : {}),
      },
    });

  it.each(["https://www.foo.com", "https://www.bar.com", "https://xpto.www.bar.com"])(
    "answers a preflight from %s at the edge",
    async (origin) => {
      const before = await hits(b.a);
      const response = await preflight("/cors-1", origin, "GET", "x-header-1, x-header-2");
      expect([200, 204]).toContain(response.status);
      expect(response.headers.get("access-control-allow-origin")).toBe(origin);
      expect(squeeze(response.headers.get("access-control-allow-methods"))).toBe("GET,OPTIONS");
      expect(squeeze(response.headers.get("access-control-allow-headers"))).toBe(
        "x-header-1,x-header-2",
      );
      expect(squeeze(response.headers.get("access-control-expose-headers"))).toBe(
        "x-header-3,x-header-4",
      );
      expect(response.headers.get("access-control-max-age")).toBe("3600");
      expect(response.headers.get("access-control-allow-credentials")).toBe("true");
      expect(await hits(b.a)).toBe(before);
    },
  );

  it("sends each CORS header of a preflight once", async () => {
    const response = await preflight("/cors-1", "https://www.foo.com", "GET");
    expect(response.headers.get("access-control-allow-origin")).toBe("https://www.foo.com");
    expect(response.headers.get("access-control-allow-credentials")).toBe("true");
    expect(response.headers.get("vary")).toBe("Origin");
  });

  it("gives a preflight from another origin no CORS headers", async () => {
    const response = await preflight("/cors-1", "https://foobar.com", "GET");
    expect([200, 204, 403]).toContain(response.status);
    expect(response.headers.has("access-control-allow-origin")).toBe(false);
    // "https://bar.com" is not "*.bar.com"; a port other than 443 is another origin.
    for (const origin of ["https://bar.com", "https://www.foo.com:8443", "http://www.foo.com"]) {
      const other = await preflight("/cors-1", origin, "GET");
      expect(other.headers.has("access-control-allow-origin")).toBe(false);
    }
  });

  it("adds the headers to actual responses from allowed origins only", async () => {
    const allowed = await h.fetch("http://gw.test/cors-1", {
      headers: { origin: "https://www.foo.com" },
    });
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get("access-control-allow-origin")).toBe("https://www.foo.com");
    expect(allowed.headers.get("access-control-allow-credentials")).toBe("true");
    expect(allowed.headers.get("vary")).toContain("Origin");
    expect(((await allowed.json()) as Echo).backend).toBe("a");
    const wildcard = await h.fetch("http://gw.test/cors-1", {
      headers: { origin: "https://www.bar.com" },
    });
    expect(wildcard.headers.get("access-control-allow-origin")).toBe("https://www.bar.com");
    const refused = await h.fetch("http://gw.test/cors-1", {
      headers: { origin: "https://foobar.com" },
    });
    expect(refused.status).toBe(200);
    expect(refused.headers.has("access-control-allow-origin")).toBe(false);
  });

  it("answers allowMethods * without credentials, and sends no Allow-Credentials", async () => {
    const response = await preflight("/cors-2", "https://www.foo.com", "POST");
    expect(["POST", "*"]).toContain(response.headers.get("access-control-allow-methods"));
    expect(response.headers.get("access-control-allow-origin")).toBe("https://www.foo.com");
    expect(response.headers.has("access-control-allow-credentials")).toBe(false);
  });

  it.each(["https://foobar.com", "https://foobar.com:12345"])(
    "takes any origin with allowOrigins * (%s)",
    async (origin) => {
      const response = await preflight("/cors-wildcard-origin", origin, "PUT");
      expect([origin, "*"]).toContain(response.headers.get("access-control-allow-origin"));
      expect(response.headers.get("access-control-allow-methods")).toBe("PUT");
      expect(response.headers.has("access-control-allow-credentials")).toBe(false);
      const actual = await h.fetch("http://gw.test/cors-wildcard-origin", {
        method: "PUT",
        headers: { origin },
      });
      expect(actual.status).toBe(200);
      expect([origin, "*"]).toContain(actual.headers.get("access-control-allow-origin"));
      expect(actual.headers.has("access-control-allow-credentials")).toBe(false);
    },
  );

  it("with credentials, echoes the origin, method and headers instead of *", async () => {
    const response = await preflight(
      "/cors-wildcard-methods-headers",
      "https://other.foo.com",
      "PUT",
      "x-header-1, x-header-2",
    );
    expect(response.headers.get("access-control-allow-origin")).toBe("https://other.foo.com");
    expect(response.headers.get("access-control-allow-methods")).toBe("PUT");
    expect(squeeze(response.headers.get("access-control-allow-headers"))).toBe(
      "x-header-1,x-header-2",
    );
    expect(response.headers.get("access-control-allow-credentials")).toBe("true");
    const actual = await h.fetch("http://gw.test/cors-wildcard-methods-headers", {
      headers: { origin: "https://other.foo.com", authorization: "Bearer test" },
    });
    expect(actual.headers.get("access-control-allow-origin")).toBe("https://other.foo.com");
    expect(actual.headers.get("access-control-allow-credentials")).toBe("true");
  });

  it("without credentials, sends no Allow-Credentials on the unauth path", async () => {
    const response = await preflight(
      "/cors-wildcard-methods-headers-unauth",
      "https://other.foo.com",
      "PUT",
      "x-header-1, x-header-2",
    );
    expect(["https://other.foo.com", "*"]).toContain(
      response.headers.get("access-control-allow-origin"),
    );
    expect(["PUT", "*"]).toContain(response.headers.get("access-control-allow-methods"));
    expect(response.headers.has("access-control-allow-credentials")).toBe(false);
    const actual = await h.fetch("http://gw.test/cors-wildcard-methods-headers-unauth", {
      headers: { origin: "https://other.foo.com", authorization: "Bearer test" },
    });
    expect(actual.headers.get("access-control-allow-origin")).toBe("https://other.foo.com");
    expect(actual.headers.has("access-control-allow-credentials")).toBe(false);
  });

  it("an OPTIONS without Access-Control-Request-Method is no preflight: it goes to the backend", async () => {
    const response = await h.fetch("http://gw.test/cors-1", {
      method: "OPTIONS",
      headers: { origin: "https://www.foo.com" },
    });
    expect(((await response.json()) as Echo).method).toBe("OPTIONS");
  });

  it("answers preflights on a rule without backends, and 500 for the rest", async () => {
    const response = await preflight("/cors-only", "https://www.foo.com", "GET");
    expect(response.status).toBe(204);
    expect(response.headers.get("access-control-allow-origin")).toBe("https://www.foo.com");
    const actual = await h.fetch("http://gw.test/cors-only", {
      headers: { origin: "https://www.foo.com" },
    });
    expect(actual.status).toBe(500);
    expect(actual.headers.get("access-control-allow-origin")).toBe("https://www.foo.com");
    expect(await actual.json()).toMatchObject({ error: "no_backends", route: "conformance" });
  });

  /** An actual (not preflight) request to `path`, from `origin` when given. */
  const actual = (path: string, origin?: string) =>
    h.fetch(`http://gw.test${path}`, origin === undefined ? {} : { headers: { origin } });

  it("puts the CORS headers on the worker's own answer when no backend answers", async () => {
    const cases = [
      { origin: "https://www.foo.com", allowOrigin: "https://www.foo.com", vary: "Origin" },
      { origin: "https://foobar.com", allowOrigin: null, vary: "Origin" },
      { origin: undefined, allowOrigin: null, vary: null },
    ];
    for (const { origin, allowOrigin, vary } of cases) {
      const response = await actual("/cors-down", origin);
      expect(response.status).toBe(503);
      expect(response.headers.get("access-control-allow-origin")).toBe(allowOrigin);
      expect(response.headers.get("vary")).toBe(vary);
    }
  });

  it("puts a backendRef's CORS headers on the answer for its missing pool", async () => {
    const response = await actual("/cors-ref-missing", "https://ref.foo.com");
    expect(response.status).toBeGreaterThanOrEqual(500);
    expect(await response.json()).toMatchObject({ error: "missing_pool" });
    expect(response.headers.get("access-control-allow-origin")).toBe("https://ref.foo.com");
  });
});

describe("filters of a backendRef", () => {
  const h = harness();
  const tag = (value: string) => [
    { type: "RequestHeaderModifier", requestHeaderModifier: { set: [{ name: "X-Ref", value }] } },
    {
      type: "ResponseHeaderModifier",
      responseHeaderModifier: { set: [{ name: "X-Via-Ref", value }] },
    },
  ];
  beforeAll(() =>
    putRoutes(
      routes(
        [
          {
            matches: [{ path: { type: "PathPrefix", value: "/split" } }],
            filters: [
              {
                type: "RequestHeaderModifier",
                requestHeaderModifier: { set: [{ name: "X-Rule", value: "yes" }] },
              },
            ],
            backendRefs: [
              { pool: "a", filters: tag("to-a") },
              {
                pool: "b",
                filters: [
                  ...tag("to-b"),
                  {
                    type: "URLRewrite",
                    urlRewrite: { path: { type: "ReplacePrefixMatch", replacePrefixMatch: "/v2" } },
                  },
                ],
              },
              { pool: "c" },
            ],
          },
          {
            matches: [{ path: { type: "PathPrefix", value: "/retried" } }],
            backendRefs: [
              { pool: "flaky", filters: tag("to-flaky") },
              { pool: "b", filters: tag("to-b") },
            ],
            retry: { attempts: 1, codes: [503] },
          },
          {
            matches: [{ path: { type: "PathPrefix", value: "/sticky" } }],
            backendRefs: [
              { pool: "a", filters: tag("to-a") },
              { pool: "c", filters: tag("to-c") },
            ],
            sessionPersistence: { cookieName: "sticky" },
          },
          {
            matches: [{ path: { type: "PathPrefix", value: "/moved" } }],
            backendRefs: [
              {
                pool: "a",
                filters: [
                  {
                    type: "RequestRedirect",
                    requestRedirect: { hostname: "new.example.com", statusCode: 301 },
                  },
                ],
              },
            ],
          },
        ],
        { flaky: pool(b.unavailable) },
      ),
    ),
  );

  it("apply only when that backendRef is picked, after the rule's", async () => {
    const seen = new Map<string, Echo & { via: string | null }>();
    for (let i = 0; i < 6; i++) {
      const response = await h.fetch("http://gw.test/split/item");
      const echo = (await response.json()) as Echo;
      seen.set(echo.backend, { ...echo, via: response.headers.get("x-via-ref") });
    }
    expect([...seen.keys()].sort()).toEqual(["a", "b", "c"]);
    expect(seen.get("a")).toMatchObject({ path: "/split/item", via: "to-a" });
    expect(seen.get("a")?.headers["x-ref"]).toBe("to-a");
    expect(seen.get("b")).toMatchObject({ path: "/v2/item", via: "to-b" });
    expect(seen.get("b")?.headers["x-ref"]).toBe("to-b");
    expect(seen.get("c")).toMatchObject({ path: "/split/item", via: null });
    expect(seen.get("c")?.headers["x-ref"]).toBeUndefined();
    for (const echo of seen.values()) expect(echo.headers["x-rule"]).toBe("yes");
  });

  it("a retry to another backendRef's endpoint gets that ref's filters", async () => {
    for (let i = 0; i < 2; i++) {
      const response = await h.fetch("http://gw.test/retried");
      const echo = (await response.json()) as Echo;
      expect(echo.backend).toBe("b");
      expect(echo.headers["x-ref"]).toBe("to-b");
      expect(response.headers.get("x-via-ref")).toBe("to-b");
    }
    // The first pick of one of the two requests was the failing ref, with its own filters.
    expect((await lastRequest(b.unavailable))?.headers["x-ref"]).toBe("to-flaky");
  });

  it("a sticky endpoint gets the filters of its backendRef", async () => {
    const jar = new CookieJar();
    const first = await h.fetch("http://gw.test/sticky");
    jar.take(first);
    const pinned = ((await first.json()) as Echo).backend;
    for (let i = 0; i < 3; i++) {
      const response = await h.fetch("http://gw.test/sticky", { headers: jar.header() });
      const echo = (await response.json()) as Echo;
      expect(echo.backend).toBe(pinned);
      expect(echo.headers["x-ref"]).toBe(`to-${pinned}`);
    }
  });

  it("a RequestRedirect on the picked backendRef answers without touching it", async () => {
    const before = await hits(b.a);
    const response = await h.fetch("http://gw.test/moved/here?q=1");
    expect(response.status).toBe(301);
    expect(response.headers.get("location")).toBe("http://new.example.com/moved/here?q=1");
    expect(await hits(b.a)).toBe(before);
  });
});

describe("a document that breaks a combination rule", () => {
  it.each<[string, unknown, string]>([
    [
      "a redirect with backendRefs",
      prefixRule("/x", [{ type: "RequestRedirect", requestRedirect: { scheme: "https" } }]),
      "routes[0].rules[0].filters[0].type: a RequestRedirect answers the request itself",
    ],
    [
      "a redirect and a rewrite",
      prefixRule(
        "/x",
        [
          { type: "RequestRedirect", requestRedirect: {} },
          { type: "URLRewrite", urlRewrite: {} },
        ],
        [],
      ),
      "routes[0].rules[0].filters[1].type: RequestRedirect and URLRewrite cannot be used together",
    ],
    [
      "a repeated filter",
      prefixRule("/x", [
        { type: "ResponseHeaderModifier", responseHeaderModifier: {} },
        { type: "ResponseHeaderModifier", responseHeaderModifier: {} },
      ]),
      "routes[0].rules[0].filters[1].type: ResponseHeaderModifier filter cannot be repeated",
    ],
    [
      "ReplacePrefixMatch on an Exact match",
      {
        matches: [{ path: { type: "Exact", value: "/x" } }],
        filters: [
          {
            type: "URLRewrite",
            urlRewrite: { path: { type: "ReplacePrefixMatch", replacePrefixMatch: "/y" } },
          },
        ],
        backendRefs: [{ pool: "a" }],
      },
      "routes[0].rules[0].filters[0].urlRewrite.path.type: ReplacePrefixMatch needs the rule to have exactly one match",
    ],
    [
      "an ExtensionRef",
      prefixRule("/x", [
        { type: "ExtensionRef", extensionRef: { group: "example.net", kind: "F", name: "f" } },
      ]),
      "routes[0].rules[0].filters[0].type: ExtensionRef filters are not supported",
    ],
  ])("is refused (%s); the last good one keeps serving", async (_, rule, problem) => {
    const h = harness({ refreshSeconds: 1 });
    await putRoutes(routes([prefixRule("/", [])]));
    expect(await h.backendOf("http://gw.test/x")).toBe("a");
    await putRoutes(routes([rule]));
    h.advance(1_000);
    expect(await h.backendOf("http://gw.test/x")).toBe("a");
    expect(h.store.lastError?.message).toContain(problem);
  });
});

describe("a ResponseHeaderModifier on a sticky rule", () => {
  it("cannot remove the session's own cookie", async () => {
    await putRoutes(
      routes([
        {
          ...prefixRule("/", [
            {
              type: "ResponseHeaderModifier",
              responseHeaderModifier: { remove: ["Set-Cookie"] },
            },
          ]),
          sessionPersistence: { cookieName: "pin" },
        },
      ]),
    );
    const response = await harness().fetch("http://gw.test/");
    expect(response.headers.getSetCookie().some((c) => c.startsWith("pin="))).toBe(true);
  });
});
