import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parsePoolDocument } from "../contract/index.ts";
import { desiredInput, FIXTURES, loadFixture } from "../test/fixtures/kube-fixtures.ts";
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
    const { pools } = desiredState(desiredInput(fixture, fixture.cluster));
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
    const { pools } = desiredState(
      desiredInput({ ...fixture, services: labelled }, undefined, { serviceSelector: "tier=edge" }),
    );
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
    const { pools, problems } = desiredState(
      desiredInput({ services: [service], slices: [] }, undefined),
    );
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
    const { problems } = desiredState(desiredInput(fixture, "eu1"));
    expect(problems).toEqual([
      {
        service: "shop/api",
        message: "port http: an endpoint has no value for {pod}; such endpoints are left out",
      },
    ]);
  });

  it("reports an appProtocol it does not know, and an ExternalName Service it cannot name", () => {
    const mixed = desiredState(
      desiredInput(loadFixture(join(FIXTURES, "app-protocol")), undefined),
    );
    expect(mixed.problems).toEqual([
      {
        service: "apps/mixed",
        message: 'port db: appProtocol "mysql" is not one Switchyard knows; published as http',
      },
    ]);
    const external = desiredState(
      desiredInput(loadFixture(join(FIXTURES, "external-name")), undefined),
    );
    expect(external.problems).toEqual([
      {
        service: "ext/bare",
        message:
          "an ExternalName Service needs a port, or a switchyard.dev/url-template without {port}; not published",
      },
    ]);
  });

  it("publishes ExternalName Services only from namespaces --allow-external-name trusts", () => {
    const fixture = loadFixture(join(FIXTURES, "external-name"));
    const untrusted = desiredState(
      desiredInput(fixture, undefined, { trust: { templates: ["*"], bindings: [] } }),
    );
    expect(untrusted.pools.size).toBe(0);
    expect(untrusted.problems.map((p) => p.message)).toContain(
      "an ExternalName Service is not allowed in namespace ext (--allow-external-name); not published",
    );
    const trusted = desiredState(
      desiredInput(fixture, undefined, {
        trust: { templates: ["*"], bindings: [], externalNames: ["ext"] },
      }),
    );
    expect(trusted.pools.size).toBeGreaterThan(0);
  });

  it("publishes a hand-made FQDN slice only where external names are trusted", () => {
    const service: Service = {
      metadata: { name: "ext", namespace: "n", annotations: { "switchyard.dev/publish": "true" } },
      spec: { ports: [{ name: "http", port: 80 }] },
    };
    const slice = {
      metadata: { name: "ext-1", namespace: "n", labels: { "kubernetes.io/service-name": "ext" } },
      addressType: "FQDN",
      ports: [{ name: "http", port: 80 }],
      endpoints: [{ addresses: ["metadata.google.internal"], conditions: { ready: true } }],
    };
    const objects = { services: [service], slices: [slice] };
    const untrusted = desiredState(
      desiredInput(objects, undefined, { trust: { templates: [], bindings: [] } }),
    );
    expect(untrusted.pools.get("pool:n/ext:http")?.body.endpoints).toEqual([]);
    expect(untrusted.problems[0]?.message).toContain("--allow-external-name");
    const trusted = desiredState(desiredInput(objects, undefined));
    expect(trusted.pools.get("pool:n/ext:http")?.body.endpoints).toEqual([
      { url: "http://metadata.google.internal:80" },
    ]);
  });

  it("never publishes a link-local address: where cloud metadata services answer", () => {
    const service: Service = {
      metadata: { name: "web", namespace: "n", annotations: { "switchyard.dev/publish": "true" } },
      spec: { ports: [{ name: "http", port: 80 }] },
    };
    const slice = (addressType: string, addresses: string[]) => ({
      metadata: {
        name: `web-${addressType}`,
        namespace: "n",
        labels: { "kubernetes.io/service-name": "web" },
      },
      addressType,
      ports: [{ name: "http", port: 8080 }],
      endpoints: addresses.map((address) => ({
        addresses: [address],
        conditions: { ready: true },
      })),
    });
    const { pools, problems } = desiredState(
      desiredInput(
        { services: [service], slices: [slice("IPv4", ["169.254.169.254", "10.0.0.1"])] },
        undefined,
      ),
    );
    expect(pools.get("pool:n/web:http")?.body.endpoints).toEqual([{ url: "http://10.0.0.1:8080" }]);
    expect(problems).toEqual([
      {
        service: "n/web",
        message:
          "port http: address 169.254.169.254 is link-local (where cloud metadata services answer); such endpoints are left out",
      },
    ]);
  });

  it("marks the pools of a Service without any slice, and not those of one with an empty slice", () => {
    const service: Service = {
      metadata: { name: "web", namespace: "n", annotations: { "switchyard.dev/publish": "true" } },
      spec: { ports: [{ name: "http", port: 80 }] },
    };
    const none = desiredState(desiredInput({ services: [service], slices: [] }, undefined));
    expect([...none.pools.values()]).toEqual([
      { key: "pool:n/web:http", service: "n/web", body: { endpoints: [] }, noSlices: true },
    ]);
    const empty = desiredState(
      desiredInput(
        {
          services: [service],
          slices: [
            {
              metadata: {
                name: "web-1",
                namespace: "n",
                labels: { "kubernetes.io/service-name": "web" },
              },
              addressType: "IPv4",
              ports: [{ name: "http", port: 8080 }],
              endpoints: [],
            },
          ],
        },
        undefined,
      ),
    );
    expect(empty.pools.get("pool:n/web:http")?.noSlices).toBeUndefined();
  });

  it("honours url-template and transport-binding only where the settings trust the namespace", () => {
    const annotated = (namespace: string, annotations: Record<string, string>): Service => ({
      metadata: {
        name: "api",
        namespace,
        annotations: { "switchyard.dev/publish": "true", ...annotations },
      },
      spec: { ports: [{ name: "http", port: 80 }] },
    });
    const services = [
      annotated("team-a", { "switchyard.dev/url-template": "http://{ip}:6443" }),
      annotated("team-b", { "switchyard.dev/transport-binding": "VPC_PROD" }),
      annotated("edge", { "switchyard.dev/transport-binding": "VPC_EDGE" }),
    ];
    const trust = { templates: [], bindings: ["edge=VPC_EDGE"] };
    const result = desiredState(desiredInput({ services, slices: [] }, undefined, { trust }));
    expect([...result.pools.keys()]).toEqual(["pool:edge/api:http"]);
    expect(result.problems).toEqual([
      {
        service: "team-a/api",
        message:
          "switchyard.dev/url-template is not allowed in namespace team-a (--allow-url-template); not published",
      },
      {
        service: "team-b/api",
        message:
          "switchyard.dev/transport-binding VPC_PROD is not allowed in namespace team-b (--allow-transport-binding); not published",
      },
    ]);
    const trusted = desiredState(
      desiredInput({ services, slices: [] }, undefined, {
        trust: { templates: ["*"], bindings: ["*=VPC_PROD", "edge=VPC_EDGE"] },
      }),
    );
    expect(trusted.problems).toEqual([]);
    expect(trusted.pools.size).toBe(3);
  });
});
