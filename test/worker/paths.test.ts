import { describe, expect, it } from "vitest";
import type { Echo } from "../../local/backends.ts";
import { backends, harness, pool, putRoutes } from "./harness.ts";

/**
 * Paths are matched and forwarded as backends read them (worker/core/path.ts): a rule that
 * answers 403 for /admin cannot be walked around with escapes, double slashes or dot segments,
 * directly or through a ReplacePrefixMatch rewrite.
 */

const b = backends();

const routes = {
  version: 1,
  routes: [
    {
      name: "guarded",
      rules: [
        {
          matches: [{ path: { type: "PathPrefix", value: "/admin" } }],
          filters: [
            { type: "DirectResponse", directResponse: { statusCode: 403, body: { string: "no" } } },
          ],
        },
        {
          matches: [{ path: { type: "PathPrefix", value: "/pub" } }],
          filters: [
            {
              type: "URLRewrite",
              urlRewrite: { path: { type: "ReplacePrefixMatch", replacePrefixMatch: "/" } },
            },
          ],
          backendRefs: [{ pool: "p" }],
        },
        { backendRefs: [{ pool: "p" }] },
      ],
    },
  ],
  pools: { p: pool(b.a) },
};

describe("paths, normalized before matching", () => {
  it.each([
    "/%61dmin",
    "//admin",
    "///admin/x",
    "/x/%2e%2e/admin",
    "/%2E/admin",
    "/ADMIN/../admin",
  ])("%s is /admin to the rules too: 403", async (path) => {
    await putRoutes(routes);
    const response = await harness().fetch(`http://x.test${path}`);
    expect(response.status).toBe(403);
  });

  it.each(["/admin%2f", "/x/..%2fadmin", "/pub/..%2fadmin", "/x%5c..%5cadmin"])(
    "%s: an escaped slash is refused with 400 by default",
    async (path) => {
      await putRoutes(routes);
      const response = await harness().fetch(`http://x.test${path}`);
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ error: "bad_path" });
    },
  );

  it("forwards the path it matched: the backend reads what the rules read", async () => {
    await putRoutes(routes);
    const h = harness();
    const echo = (await (await h.fetch("http://x.test//%61pi/./v1//x?q=%2F")).json()) as Echo;
    expect(echo.path).toBe("/api/v1/x?q=%2F"); // the query is the backend's business
    const rewritten = (await (await h.fetch("http://x.test/pub/%7Euser")).json()) as Echo;
    expect(rewritten.path).toBe("/~user");
  });

  it("decodes escaped slashes when PATH_ESCAPED_SLASHES=decode, and keeps them with keep", async () => {
    await putRoutes(routes);
    const decode = harness({ env: { PATH_ESCAPED_SLASHES: "decode" } });
    expect((await decode.fetch("http://x.test/x/..%2fadmin")).status).toBe(403);
    expect((await decode.fetch("http://x.test/pub/..%2fadmin")).status).toBe(403);
    const keep = harness({ env: { PATH_ESCAPED_SLASHES: "keep" } });
    const echo = (await (await keep.fetch("http://x.test/a%2fb")).json()) as Echo;
    expect(echo.path).toBe("/a%2Fb");
  });
});
