import { describe, expect, it } from "vitest";
import { routesDoc } from "../../test/fixtures/worker-rules.ts";
import { explain } from "./explain.ts";
import { requestView } from "./request.ts";

const doc = routesDoc({
  version: 1,
  routes: [
    {
      name: "shop",
      hostnames: ["shop.example.com"],
      rules: [
        {
          name: "api",
          matches: [{ path: { type: "PathPrefix", value: "/api" } }],
          backendRefs: [{ pool: "api", weight: 9 }, { pool: "canary" }],
        },
        { name: "web", backendRefs: [{ pool: "web" }] },
      ],
    },
    {
      name: "admin",
      hostnames: ["admin.example.com"],
      rules: [{ backendRefs: [{ pool: "admin" }] }],
    },
    {
      name: "any",
      rules: [
        {
          matches: [{ path: { type: "PathPrefix", value: "/api" }, method: "POST" }],
          backendRefs: [{ pool: "any" }],
        },
      ],
    },
  ],
});

describe("explain", () => {
  it("names the winner with its backendRefs and says why each other match lost", () => {
    const result = explain(doc, requestView({ host: "shop.example.com", path: "/api/items" }));
    expect(result.chosen).toEqual({
      route: "shop",
      rule: "api",
      match: 0,
      filters: [],
      backendRefs: [
        { pool: "api", weight: 9, priority: 0, filters: [] },
        { pool: "canary", weight: 1, priority: 0, filters: [] },
      ],
    });
    expect(result.considered).toEqual([
      {
        route: "shop",
        rule: "api",
        match: 0,
        verdict: "chosen",
        reason: "the best match by HTTPRoute precedence",
      },
      {
        route: "shop",
        rule: "web",
        match: 0,
        verdict: "matches, lower precedence",
        reason: "loses on path length",
      },
      {
        route: "admin",
        rule: "0",
        match: 0,
        verdict: "no match",
        reason: "hostnames admin.example.com do not take shop.example.com",
      },
      { route: "any", rule: "0", match: 0, verdict: "no match", reason: "method is not POST" },
    ]);
  });

  it("says when nothing matches", () => {
    const result = explain(doc, requestView({ host: "other.test", path: "/", method: "GET" }));
    expect(result.chosen).toBeUndefined();
    expect(result.considered.map((c) => c.verdict)).toEqual([
      "no match",
      "no match",
      "no match",
      "no match",
    ]);
  });
});
