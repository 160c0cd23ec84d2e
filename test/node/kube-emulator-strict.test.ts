import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type KubeApi, startKubeApi } from "../../local/emulators/kube-api.ts";

/**
 * The emulator refuses what the Kubernetes API server refuses, with the server's Status bodies.
 * Each rule runs through kubectl where kubectl can say it, and as a raw request otherwise.
 */

const run = promisify(execFile);
let api: KubeApi;
let dir: string;

beforeEach(async () => {
  api = await startKubeApi({ leaseNames: ["switchyard-sync-default"] });
  dir = await mkdtemp(join(tmpdir(), "switchyard-kube-"));
});
afterEach(async () => {
  await api.close();
  await rm(dir, { recursive: true, force: true });
});

/** kubectl's output, and its exit status instead of a throw. */
async function kubectl(...args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run(
      "kubectl",
      ["--server", api.url, "--insecure-skip-tls-verify", ...args],
      { timeout: 20_000 },
    );
    return { code: 0, out: stdout + stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, out: e.stdout + e.stderr };
  }
}

/** kubectl create --validate=false -f <object as a JSON file>: the server decides. */
async function create(object: unknown) {
  const file = join(dir, `object-${Math.random().toString(36).slice(2)}.json`);
  await writeFile(file, JSON.stringify(object));
  return kubectl("create", "--validate=false", "-f", file);
}

async function raw(method: string, path: string, body?: unknown) {
  const response = await fetch(api.url + path, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

const LEASES = "/apis/coordination.k8s.io/v1/namespaces/switchyard/leases";
const lease = (spec: Record<string, unknown>, name = "switchyard-sync-default") => ({
  apiVersion: "coordination.k8s.io/v1",
  kind: "Lease",
  metadata: { name, namespace: "switchyard" },
  spec,
});

describe("the Kubernetes API emulator decodes bodies as the API server does", () => {
  it("MicroTime takes exactly six fractional digits: .123Z is a 400", async () => {
    const refused = await create(
      lease({ holderIdentity: "a", renewTime: "2026-11-29T12:00:00.123Z" }),
    );
    expect(refused.code).not.toBe(0);
    expect(refused.out).toContain("BadRequest");
    expect(refused.out).toContain(
      'parsing time "2026-11-29T12:00:00.123Z" as "2006-01-02T15:04:05.000000Z07:00": cannot parse ".123Z" as ".000000"',
    );
    const status = await raw("POST", LEASES, lease({ acquireTime: "2026-11-29T12:00:00Z" }));
    expect(status).toMatchObject({
      status: 400,
      body: { kind: "Status", status: "Failure", reason: "BadRequest", code: 400 },
    });
    expect(
      (await create(lease({ holderIdentity: "a", renewTime: "2026-11-29T12:00:00.123000Z" }))).code,
    ).toBe(0);
  });

  it("Time is RFC 3339, kept in whole seconds", async () => {
    const bad = await create({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "api", namespace: "shop", creationTimestamp: "yesterday" },
      spec: { ports: [{ port: 80 }] },
    });
    expect(bad.out).toContain('parsing time "yesterday" as "2006-01-02T15:04:05Z07:00"');
    const node = await raw("POST", "/api/v1/nodes", {
      metadata: { name: "n1", creationTimestamp: "2026-11-29T12:00:00.987654Z" },
    });
    expect(node.status).toBe(201);
    expect((node.body.metadata as { creationTimestamp: string }).creationTimestamp).toBe(
      "2026-11-29T12:00:00Z",
    );
  });

  it("int32 fields take integers only, as Go's JSON decoder does", async () => {
    const fraction = await create(lease({ leaseDurationSeconds: 1.5 }));
    expect(fraction.out).toContain(
      "cannot unmarshal number 1.5 into Go struct field LeaseSpec.spec.leaseDurationSeconds of type int32",
    );
    const text = await raw("POST", LEASES, lease({ leaseDurationSeconds: "15" }));
    expect(text.status).toBe(400);
    expect(String(text.body.message)).toContain(
      "cannot unmarshal string into Go struct field LeaseSpec.spec.leaseDurationSeconds of type int32",
    );
  });

  it("names are RFC 1123 subdomains (RFC 1035 labels for Services): a 422 with its cause", async () => {
    const leaseName = await create(lease({}, "Bad_Name"));
    expect(leaseName.out).toContain("Invalid");
    // kubectl words a 422 from its details: The Lease "Bad_Name" is invalid: metadata.name: …
    expect(leaseName.out).toContain('The Lease "Bad_Name" is invalid: metadata.name');
    const service = await raw("POST", "/api/v1/namespaces/shop/services", {
      metadata: { name: "1api" },
      spec: { ports: [{ port: 80 }] },
    });
    expect(service.status).toBe(422);
    expect(service.body).toMatchObject({
      reason: "Invalid",
      details: { name: "1api", kind: "Service", causes: [{ field: "metadata.name" }] },
    });
  });

  it("required fields and ranges are a 422", async () => {
    const noName = await raw("POST", LEASES, { metadata: {}, spec: {} });
    expect(noName.status).toBe(422);
    expect(String(noName.body.message)).toContain("name or generateName is required");
    const slice = await create({
      apiVersion: "discovery.k8s.io/v1",
      kind: "EndpointSlice",
      metadata: { name: "web-1", namespace: "shop" },
      endpoints: [],
    });
    expect(slice.out).toContain("addressType: Required value");
    const zero = await create(lease({ leaseDurationSeconds: 0 }));
    expect(zero.out).toContain(
      "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
    );
  });

  it("a Lease update names the resourceVersion it replaces (422), a stale one is a 409", async () => {
    const created = await raw("POST", LEASES, lease({ holderIdentity: "a" }));
    const put = (body: unknown) => raw("PUT", `${LEASES}/switchyard-sync-default`, body);
    expect((await put(lease({ holderIdentity: "b" }))).body).toMatchObject({
      code: 422,
      reason: "Invalid",
      details: { causes: [{ field: "metadata.resourceVersion" }] },
    });
    const version = (created.body.metadata as { resourceVersion: string }).resourceVersion;
    const withVersion = (rv: string) => ({
      ...lease({ holderIdentity: "b" }),
      metadata: { name: "switchyard-sync-default", namespace: "switchyard", resourceVersion: rv },
    });
    expect((await put(withVersion(version))).status).toBe(200);
    expect((await put(withVersion(version))).body).toMatchObject({ code: 409, reason: "Conflict" });
  });

  it("accepts what the API server accepts: an int targetPort, a merge patch of a Lease", async () => {
    const svc = await create({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "api", namespace: "shop" },
      spec: {
        ports: [
          { port: 80, targetPort: 8080 },
          { name: "h", port: 81, targetPort: "http" },
        ],
      },
    });
    expect(svc.out).toContain("service/api created");
    expect((await create(lease({ holderIdentity: "a" }))).code).toBe(0);
    const labelled = await kubectl(
      "label",
      "lease",
      "-n",
      "switchyard",
      "switchyard-sync-default",
      "x=y",
    );
    expect(labelled.out).toContain("labeled");
  });

  it("answers 404 NotFound and 409 AlreadyExists", async () => {
    const missing = await kubectl("get", "lease", "-n", "switchyard", "switchyard-sync-default");
    expect(missing.out).toContain("NotFound");
    expect((await create(lease({}))).code).toBe(0);
    expect((await create(lease({}))).out).toContain("AlreadyExists");
  });

  it("is 403 Forbidden for a Lease the shipped Role does not name, as RBAC would be", async () => {
    const other = await kubectl("get", "lease", "-n", "switchyard", "switchyard-sync-eu1");
    expect(other.out).toContain("Forbidden");
    expect(other.out).toContain(
      'leases.coordination.k8s.io "switchyard-sync-eu1" is forbidden: User "system:serviceaccount:switchyard:switchyard-sync" cannot get resource "leases"',
    );
    // RBAC cannot restrict create by name: creating is allowed, reading it back is not.
    expect((await create(lease({}, "switchyard-sync-eu1"))).code).toBe(0);
    expect((await raw("GET", `${LEASES}/switchyard-sync-eu1`)).status).toBe(403);
    expect((await kubectl("get", "leases", "-n", "switchyard")).out).toContain("Forbidden");
  });
});

describe("the Kubernetes API emulator lists and watches as the API server does", () => {
  const service = (name: string, labels: Record<string, string> = {}) => ({
    metadata: { name, namespace: "shop", labels },
    spec: { ports: [{ port: 80 }] },
  });

  it("pages a LIST with limit and continue, every page from the first page's snapshot", async () => {
    for (const name of ["a", "b", "c", "d", "e"]) api.store.create("services", service(name));
    const chunked = await kubectl("get", "services", "-A", "--chunk-size=2", "-o", "name");
    expect(chunked.out.trim().split("\n")).toEqual(
      ["a", "b", "c", "d", "e"].map((n) => `service/${n}`),
    );
    const pages = api.requests.filter(
      (r) => r.startsWith("GET /api/v1/services?") && r.includes("limit=2"),
    );
    expect(pages).toHaveLength(3);
    expect(pages.filter((r) => r.includes("continue="))).toHaveLength(2);

    const first = await raw("GET", "/api/v1/services?limit=2");
    const meta = first.body.metadata as {
      continue: string;
      resourceVersion: string;
      remainingItemCount: number;
    };
    expect(meta.remainingItemCount).toBe(3);
    api.store.create("services", service("aa"));
    const second = await raw("GET", `/api/v1/services?limit=10&continue=${meta.continue}`);
    expect(
      (second.body.items as { metadata: { name: string } }[]).map((i) => i.metadata.name),
    ).toEqual(["c", "d", "e"]);
    expect((second.body.metadata as { resourceVersion: string }).resourceVersion).toBe(
      meta.resourceVersion,
    );
  });

  it("answers 410 Expired for a continue token or a watch older than a compaction", async () => {
    for (const name of ["a", "b", "c"]) api.store.create("services", service(name));
    const first = await raw("GET", "/api/v1/services?limit=1");
    api.store.create("services", service("d"));
    api.store.compact();
    const expired = await raw(
      "GET",
      `/api/v1/services?limit=1&continue=${(first.body.metadata as { continue: string }).continue}`,
    );
    expect(expired.body).toMatchObject({ code: 410, reason: "Expired" });
    const watch = await kubectl("get", "--raw", "/api/v1/services?watch=true&resourceVersion=1");
    expect(JSON.parse(watch.out.trim())).toMatchObject({
      type: "ERROR",
      object: { kind: "Status", code: 410, reason: "Expired" },
    });
  });

  it("honours label selectors, equality and set-based, and refuses one it cannot parse", async () => {
    api.store.create("services", service("web", { tier: "web" }));
    api.store.create("services", service("edge", { tier: "edge", canary: "true" }));
    api.store.create("services", service("db", { tier: "db" }));
    const names = async (...args: string[]) =>
      (await kubectl("get", "services", "-A", "-o", "name", ...args)).out.trim();
    expect(await names("-l", "tier in (edge,web)")).toBe("service/edge\nservice/web");
    expect(await names("-l", "tier in (edge,web),!canary")).toBe("service/web");
    expect(await names("-l", "tier notin (web),tier!=db")).toBe("service/edge");
    expect(await names("-l", "tier==db")).toBe("service/db");
    const bad = await raw("GET", "/api/v1/services?labelSelector=tier%20in%20edge");
    expect(bad.body).toMatchObject({ code: 400, reason: "BadRequest" });
  });

  it("honours field selectors on metadata.name and metadata.namespace, and refuses others", async () => {
    api.store.create("services", service("api"));
    api.store.create("services", {
      ...service("api"),
      metadata: { name: "api", namespace: "other" },
    });
    const found = await kubectl(
      "get",
      "services",
      "-A",
      "--field-selector",
      "metadata.namespace=other",
      "-o",
      "name",
    );
    expect(found.out.trim()).toBe("service/api");
    const refused = await kubectl(
      "get",
      "services",
      "-A",
      "--field-selector",
      "spec.type=ClusterIP",
    );
    expect(refused.out).toContain("field label not supported: spec.type");
  });

  it("sends bookmarks only to watches that asked for them", async () => {
    const plain = kubectl("get", "--raw", "/api/v1/services?watch=true&timeoutSeconds=1");
    const asked = kubectl(
      "get",
      "--raw",
      "/api/v1/services?watch=true&timeoutSeconds=1&allowWatchBookmarks=true",
    );
    await new Promise<void>((resolve) => {
      const check = () =>
        api.requests.filter((r) => r.includes("watch=true")).length === 2
          ? resolve()
          : setTimeout(check, 10);
      check();
    });
    api.bookmark();
    expect((await plain).out).not.toContain("BOOKMARK");
    expect((await asked).out).toContain("BOOKMARK");
  });

  it("tells a selecting watch when an object stops or starts matching", async () => {
    api.store.create("services", service("web", { tier: "edge" }));
    const response = await fetch(
      `${api.url}/api/v1/services?watch=true&labelSelector=tier%3Dedge&resourceVersion=${api.store.resourceVersion}`,
    );
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = "";
    const events = async (count: number) => {
      while (text.trim().split("\n").filter(Boolean).length < count)
        text += decoder.decode((await reader.read()).value);
      return text
        .trim()
        .split("\n")
        .map(
          (line) => JSON.parse(line) as { type: string; object: { metadata: { name: string } } },
        );
    };
    api.store.apply("services", service("web", { tier: "none" }));
    api.store.apply("services", service("web", { tier: "edge" }));
    const seen = await events(2);
    expect(seen.map((e) => `${e.type} ${e.object.metadata.name}`)).toEqual([
      "DELETED web",
      "ADDED web",
    ]);
    await reader.cancel();
  });
});
