import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";

/** The Kubernetes manifests parse, and grant what discovery-sync needs and no more. */

const DIR = fileURLToPath(new URL("../../deploy/kubernetes/", import.meta.url));
type Doc = {
  kind: string;
  metadata: { name: string };
  rules?: { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }[];
  spec?: Record<string, unknown>;
};
const docs: Doc[] = readdirSync(DIR)
  .filter((f) => f.endsWith(".yaml"))
  .flatMap((f) => parseAllDocuments(readFileSync(DIR + f, "utf8")).map((d) => d.toJS() as Doc));
const byKind = (kind: string) => docs.filter((d) => d.kind === kind);

describe("deploy/kubernetes", () => {
  it("has a Deployment of two replicas with probes, a ServiceAccount, RBAC and a Secret", () => {
    expect(docs.map((d) => d.kind).sort()).toEqual([
      "ClusterRole",
      "ClusterRoleBinding",
      "Deployment",
      "Namespace",
      "Role",
      "RoleBinding",
      "Secret",
      "ServiceAccount",
    ]);
    const deployment = byKind("Deployment")[0] as unknown as {
      spec: {
        replicas: number;
        template: {
          spec: {
            containers: {
              livenessProbe: { httpGet: { path: string } };
              readinessProbe: { httpGet: { path: string } };
            }[];
          };
        };
      };
    };
    expect(deployment.spec.replicas).toBe(2);
    const container = deployment.spec.template.spec.containers[0]!;
    expect([container.livenessProbe.httpGet.path, container.readinessProbe.httpGet.path]).toEqual([
      "/healthz",
      "/readyz",
    ]);
  });

  it("grants only get, list and watch cluster-wide, on services, endpointslices and nodes", () => {
    const rules = byKind("ClusterRole")[0]!.rules!;
    expect(new Set(rules.flatMap((r) => r.verbs))).toEqual(new Set(["get", "list", "watch"]));
    expect(new Set(rules.flatMap((r) => r.resources))).toEqual(
      new Set(["services", "nodes", "endpointslices"]),
    );
  });

  it("grants Lease access in its own namespace only", () => {
    const role = byKind("Role")[0]!;
    expect(new Set(role.rules!.flatMap((r) => r.resources))).toEqual(new Set(["leases"]));
    expect(role.rules!.find((r) => r.verbs.includes("update"))?.resourceNames).toEqual([
      "switchyard-sync-default",
    ]);
  });
});
