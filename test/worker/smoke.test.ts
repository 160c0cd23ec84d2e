import { env, exports } from "cloudflare:workers";
import { expect, inject, it } from "vitest";

it("routes to a backend", async () => {
  const backends = inject("backends");
  await env.SWITCHYARD.put(
    "routes",
    JSON.stringify({
      version: 1,
      routes: [{ name: "r", rules: [{ backendRefs: [{ pool: "p" }] }] }],
      pools: { p: { endpoints: [{ url: backends.a }] } },
    }),
  );
  const res = await exports.default.fetch("http://example.com/x");
  expect(res.status).toBe(200);
  expect(await res.json()).toMatchObject({ backend: "a", path: "/x" });
});
