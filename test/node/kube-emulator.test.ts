import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type KubeApi, startKubeApi } from "../../local/emulators/kube-api.ts";

/** The Kubernetes API emulator checked with kubectl, a real client. */

const run = promisify(execFile);
let api: KubeApi;
const kubectl = (args: string[]) =>
  run("kubectl", ["--server", api.url, "--insecure-skip-tls-verify", ...args], { timeout: 20_000 });

beforeEach(async () => {
  api = await startKubeApi();
});
afterEach(async () => {
  await api.close();
});

describe("the Kubernetes API emulator, as kubectl sees it", () => {
  it("has kubectl to check it with (Debian: apt-get install kubernetes-client)", async () => {
    const { stdout } = await run("kubectl", ["version", "--client"]);
    expect(stdout).toContain("Client Version");
  });

  it("creates, lists, labels and deletes objects; list items have no kind or apiVersion", async () => {
    const file = join(tmpdir(), `slice-${process.pid}.json`);
    await writeFile(
      file,
      JSON.stringify({
        apiVersion: "discovery.k8s.io/v1",
        kind: "EndpointSlice",
        metadata: {
          name: "web-1",
          namespace: "shop",
          labels: { "kubernetes.io/service-name": "web" },
        },
        addressType: "IPv4",
        ports: [{ name: "http", port: 8080 }],
        endpoints: [{ addresses: ["10.0.0.1"] }],
      }),
    );
    expect((await kubectl(["create", "--validate=false", "-f", file])).stdout).toContain(
      "endpointslice.discovery.k8s.io/web-1 created",
    );
    expect(
      (await kubectl(["label", "endpointslice", "-n", "shop", "web-1", "tier=edge"])).stdout,
    ).toContain("labeled");
    const list = JSON.parse(
      (await kubectl(["get", "endpointslices", "-A", "-l", "tier=edge", "-o", "json"])).stdout,
    );
    expect(list.items.map((i: { metadata: { name: string } }) => i.metadata.name)).toEqual([
      "web-1",
    ]);
    const raw = await (await fetch(`${api.url}/apis/discovery.k8s.io/v1/endpointslices`)).json();
    expect((raw as { items: { kind?: string }[] }).items[0]?.kind).toBeUndefined();
    expect((raw as { items: { apiVersion?: string }[] }).items[0]?.apiVersion).toBeUndefined();
    expect((raw as { metadata: { resourceVersion: string } }).metadata.resourceVersion).toBe("2");
    expect((await kubectl(["delete", "endpointslice", "-n", "shop", "web-1"])).stdout).toContain(
      "deleted",
    );
    expect((await kubectl(["get", "endpointslices", "-A", "-o", "json"])).stdout).toContain(
      '"items": []',
    );
  });

  it("streams watch events to kubectl get --watch", async () => {
    const watcher = spawn(
      "kubectl",
      [
        "--server",
        api.url,
        "--insecure-skip-tls-verify",
        "get",
        "services",
        "-A",
        "--watch",
        "--output-watch-events",
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    let seen = "";
    const deleted = new Promise<void>((resolve) => {
      watcher.stdout.on("data", (chunk) => {
        seen += chunk;
        if (seen.includes("DELETED")) resolve();
      });
    });
    // kubectl lists first, then watches from the list's resourceVersion.
    await new Promise<void>((resolve) => {
      const check = () =>
        api.requests.some((r) => r.startsWith("GET /api/v1/services?limit="))
          ? resolve()
          : setTimeout(check, 20);
      check();
    });
    api.store.create("services", {
      metadata: { name: "api", namespace: "shop" },
      spec: { ports: [{ port: 80 }] },
    });
    api.store.apply("services", {
      metadata: { name: "api", namespace: "shop", labels: { a: "b" } },
      spec: { ports: [{ port: 80 }] },
    });
    api.store.delete("services", "shop", "api");
    await deleted;
    watcher.kill();
    await once(watcher, "exit");
    const events = seen
      .trim()
      .split("\n")
      .slice(1)
      .map((line) => line.split(/\s+/).slice(0, 3).join(" "));
    expect(events).toEqual(["ADDED shop api", "MODIFIED shop api", "DELETED shop api"]);
  });

  it("answers a watch from a compacted resourceVersion with 410 Gone, and a stale Lease update with 409", async () => {
    api.store.create("services", { metadata: { name: "a", namespace: "x" } });
    api.store.compact();
    const response = await fetch(`${api.url}/api/v1/services?watch=true&resourceVersion=0`);
    const event = JSON.parse((await response.text()).trim());
    expect(event).toMatchObject({
      type: "ERROR",
      object: { kind: "Status", code: 410, reason: "Expired" },
    });

    const lease = {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: { name: "l", namespace: "default" },
      spec: { holderIdentity: "a" },
    };
    const created = (await (
      await fetch(`${api.url}/apis/coordination.k8s.io/v1/namespaces/default/leases`, {
        method: "POST",
        body: JSON.stringify(lease),
      })
    ).json()) as { metadata: { resourceVersion: string } };
    const put = (rv: string) =>
      fetch(`${api.url}/apis/coordination.k8s.io/v1/namespaces/default/leases/l`, {
        method: "PUT",
        body: JSON.stringify({ ...lease, metadata: { ...lease.metadata, resourceVersion: rv } }),
      });
    expect((await put(created.metadata.resourceVersion)).status).toBe(200);
    const stale = await put(created.metadata.resourceVersion);
    expect(stale.status).toBe(409);
    expect(((await stale.json()) as { reason: string }).reason).toBe("Conflict");
  });

  it("sends bookmarks on open watches", async () => {
    const response = await fetch(`${api.url}/api/v1/services?watch=true&allowWatchBookmarks=true`);
    const reader = response.body!.getReader();
    api.bookmark();
    const { value } = await reader.read();
    expect(JSON.parse(new TextDecoder().decode(value))).toMatchObject({
      type: "BOOKMARK",
      object: { kind: "Service", metadata: { resourceVersion: "0" } },
    });
    await reader.cancel();
  });
});
