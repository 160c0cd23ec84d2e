import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parsePoolDocument } from "../contract/index.ts";
import { FIXTURES, indexSlices, loadFixture } from "../test/fixtures/kube-fixtures.ts";
import { desiredState } from "./desired.ts";
import type { Service } from "./model.ts";

describe("desired state from EndpointSlice fixtures", () => {
  const cases = readdirSync(FIXTURES);
  it("has fixtures", () => expect(cases.length).toBeGreaterThanOrEqual(9));

  it.each(cases)("%s", (name) => {
    const fixture = loadFixture(join(FIXTURES, name));
    const expected = JSON.parse(
      readFileSync(join(FIXTURES, name, "expected.json"), "utf8"),
    ) as Record<string, unknown>;
    const { pools } = desiredState({
      cluster: fixture.cluster,
      selection: {},
      services: fixture.services,
      slicesByService: indexSlices(fixture.slices),
      nodes: fixture.nodes,
    });
    const actual = Object.fromEntries([...pools].map(([key, pool]) => [key, pool.body]));
    expect(actual).toEqual(expected);
    for (const body of Object.values(actual)) {
      const parsed = parsePoolDocument({
        version: 1,
        generation: 1,
        updatedAt: "2026-11-25T10:00:00Z",
        ...body,
      });
      expect(parsed.ok, JSON.stringify(parsed)).toBe(true);
    }
  });

  it("selects by label selector instead of the annotation when one is given", () => {
    const fixture = loadFixture(join(FIXTURES, "selection"));
    const labelled = fixture.services.map((s) => ({
      ...s,
      metadata: { ...s.metadata, labels: { tier: s.metadata?.name === "quiet" ? "edge" : "none" } },
    }));
    const { pools } = desiredState({
      cluster: undefined,
      selection: { serviceSelector: "tier=edge" },
      services: labelled,
      slicesByService: indexSlices(fixture.slices),
    });
    expect([...pools.keys()]).toEqual(["pool:shop/quiet:http"]);
  });

  it("reports a template with an unknown placeholder and publishes nothing for it", () => {
    const service: Service = {
      metadata: {
        name: "x",
        namespace: "n",
        annotations: {
          "switchyard.dev/publish": "true",
          "switchyard.dev/url-template": "https://{podname}.example.com",
        },
      },
      spec: { ports: [{ name: "http", port: 80 }] },
    };
    const { pools, problems } = desiredState({
      cluster: undefined,
      selection: {},
      services: [service],
      slicesByService: new Map(),
    });
    expect(pools.size).toBe(0);
    expect(problems).toEqual([
      {
        service: "n/x",
        message: "switchyard.dev/url-template: unknown placeholder {podname}; not published",
      },
    ]);
  });

  it("reports endpoints a template cannot render", () => {
    const fixture = loadFixture(join(FIXTURES, "template"));
    const { problems } = desiredState({
      cluster: "eu1",
      selection: {},
      services: fixture.services,
      slicesByService: indexSlices(fixture.slices),
    });
    expect(problems).toEqual([
      {
        service: "shop/api",
        message: "port http: an endpoint has no value for {pod}; such endpoints are left out",
      },
    ]);
  });
});
