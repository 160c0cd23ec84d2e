import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { parseSettings } from "../../discovery-sync/settings.ts";

/**
 * The deploy assets as a cluster would get them: the kustomize base and the example overlay
 * rendered by `kubectl kustomize`, checked for what makes them start and work — a numeric
 * non-root user, RBAC for exactly the Lease the sync will use, the image's Node flags equal to
 * `npm run sync`'s, probes, resources, a PodDisruptionBudget and spread replicas.
 */

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../../", import.meta.url));

interface Doc {
  kind: string;
  metadata: { name: string; namespace?: string };
  data?: Record<string, string>;
  rules?: { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }[];
  spec?: Record<string, unknown>;
}

interface Container {
  args?: string[];
  env?: { name: string; value?: string }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  livenessProbe?: { httpGet: { path: string } };
  readinessProbe?: { httpGet: { path: string } };
  startupProbe?: { httpGet: { path: string } };
  resources?: { requests?: { memory?: string }; limits?: { memory?: string } };
}

async function render(dir: string): Promise<Doc[]> {
  const { stdout } = await run("kubectl", ["kustomize", `${ROOT}deploy/kubernetes/${dir}`], {
    timeout: 20_000,
  });
  return parseAllDocuments(stdout).map((d) => d.toJS() as Doc);
}

function deploymentOf(docs: Doc[]) {
  const deployment = docs.find((d) => d.kind === "Deployment") as Doc;
  const pod = (deployment.spec as { template: { spec: Record<string, unknown> } }).template.spec;
  return { deployment, pod, container: (pod.containers as Container[])[0] as Container };
}

/** The Lease name discovery-sync computes from the rendered container's flags and environment. */
function leaseNameOf(docs: Doc[]): string {
  const { container } = deploymentOf(docs);
  const env: NodeJS.ProcessEnv = {
    CLOUDFLARE_API_TOKEN: "t",
    CLOUDFLARE_ACCOUNT_ID: "a",
    SWITCHYARD_KV_NAMESPACE_ID: "n",
  };
  for (const from of container.envFrom ?? []) {
    const map = docs.find(
      (d) => d.kind === "ConfigMap" && d.metadata.name === from.configMapRef?.name,
    );
    Object.assign(env, map?.data ?? {});
  }
  for (const e of container.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
  const settings = parseSettings(container.args ?? [], env);
  if (settings === "help") throw new Error("help");
  return settings.leaseName;
}

function mib(quantity: string | undefined): number {
  const match = /^(\d+)(Mi|Gi)$/.exec(quantity ?? "");
  if (!match) throw new Error(`not a Mi/Gi quantity: ${quantity}`);
  return Number(match[1]) * (match[2] === "Gi" ? 1024 : 1);
}

describe("deploy/kubernetes, rendered with kubectl kustomize", () => {
  it.each(["base", "overlays/example"])(
    "%s: RBAC allows exactly the Lease the sync uses",
    async (dir) => {
      const docs = await render(dir);
      const role = docs.find((d) => d.kind === "Role") as Doc;
      const named = role.rules?.filter((r) => r.resourceNames) ?? [];
      expect(named).toHaveLength(1);
      expect(named[0]?.resources).toEqual(["leases"]);
      expect(new Set(named[0]?.verbs)).toEqual(new Set(["get", "update"]));
      expect(named[0]?.resourceNames).toEqual([leaseNameOf(docs)]);
      // create cannot be limited by name in RBAC; nothing else is granted on Leases.
      expect(role.rules?.filter((r) => !r.resourceNames).flatMap((r) => r.verbs)).toEqual([
        "create",
      ]);
    },
  );

  it("the example overlay sets the cluster and its Lease together", async () => {
    const docs = await render("overlays/example");
    expect(leaseNameOf(docs)).toBe("switchyard-sync-eu1");
    const map = docs.find((d) => d.kind === "ConfigMap") as Doc;
    expect(map.data).toMatchObject({ SWITCHYARD_CLUSTER: "eu1" });
  });

  it("runs as a numeric non-root user, in the image and in the pod", async () => {
    const { pod } = deploymentOf(await render("overlays/example"));
    const security = pod.securityContext as { runAsNonRoot: boolean; runAsUser: number };
    expect(security.runAsNonRoot).toBe(true);
    expect(Number.isInteger(security.runAsUser) && security.runAsUser > 0).toBe(true);
    const user = /^USER\s+(\S+)$/m.exec(readFileSync(`${ROOT}Dockerfile`, "utf8"))?.[1];
    expect(user).toMatch(/^[1-9]\d*(:\d+)?$/);
    expect(Number(user?.split(":")[0])).toBe(security.runAsUser);
  });

  it("starts the image with npm run sync's Node flags", () => {
    const script = (
      JSON.parse(readFileSync(`${ROOT}package.json`, "utf8")) as { scripts: { sync: string } }
    ).scripts.sync;
    const npmFlags = script
      .replace(/\$\{SYNC_HEAP_MB:-(\d+)\}/, "$1")
      .split(/\s+/)
      .filter((w) => w.startsWith("--"));
    const entrypoint = /^ENTRYPOINT\s+(\[.*\])$/m.exec(
      readFileSync(`${ROOT}Dockerfile`, "utf8"),
    )?.[1];
    const imageFlags = (JSON.parse(entrypoint ?? "[]") as string[]).filter((w) =>
      w.startsWith("--"),
    );
    expect(imageFlags).toEqual(npmFlags);
    expect(imageFlags.length).toBeGreaterThan(0);
    // And the same allocator setting.
    const arenas = /MALLOC_ARENA_MAX=(\d+)/.exec(script)?.[1];
    expect(arenas).toBeDefined();
    expect(readFileSync(`${ROOT}Dockerfile`, "utf8")).toContain(`ENV MALLOC_ARENA_MAX=${arenas}`);
  });

  it("has probes, memory above the measured peak, a PodDisruptionBudget and spread replicas", async () => {
    const docs = await render("overlays/example");
    const { deployment, pod, container } = deploymentOf(docs);
    expect((deployment.spec as { replicas: number }).replicas).toBe(2);
    expect(container.livenessProbe?.httpGet.path).toBe("/healthz");
    expect(container.readinessProbe?.httpGet.path).toBe("/readyz");
    expect(container.startupProbe?.httpGet.path).toBe("/healthz");
    // docs/benchmarks.md: peak resident memory at 10,000 Services, relist included.
    const peak = Number(
      /peak resident memory, whole run[^|]*\| *(\d+) MiB/i.exec(
        readFileSync(`${ROOT}docs/benchmarks.md`, "utf8"),
      )?.[1],
    );
    expect(peak).toBeGreaterThan(0);
    expect(mib(container.resources?.requests?.memory)).toBeGreaterThanOrEqual(peak);
    expect(mib(container.resources?.limits?.memory)).toBeGreaterThanOrEqual(Math.ceil(peak * 1.3));
    const pdb = docs.find((d) => d.kind === "PodDisruptionBudget") as Doc;
    expect(pdb.spec).toMatchObject({
      minAvailable: 1,
      selector: { matchLabels: { "app.kubernetes.io/name": "switchyard-sync" } },
    });
    const spread = pod.topologySpreadConstraints as { topologyKey: string }[];
    expect(spread.map((s) => s.topologyKey)).toContain("kubernetes.io/hostname");
  });

  it("grants only get, list and watch cluster-wide, on services, endpointslices and nodes", async () => {
    const rules = (await render("base")).find((d) => d.kind === "ClusterRole")?.rules ?? [];
    expect(new Set(rules.flatMap((r) => r.verbs))).toEqual(new Set(["get", "list", "watch"]));
    expect(new Set(rules.flatMap((r) => r.resources))).toEqual(
      new Set(["services", "nodes", "endpointslices"]),
    );
  });
});
