import { afterEach, describe, expect, it } from "vitest";
import type { SyncDaemon } from "../../discovery-sync/daemon.ts";
import type { Settings } from "../../discovery-sync/settings.ts";
import { type KvRestEmulator, startKvRest } from "../../local/emulators/kv-rest.ts";
import {
  poolOf,
  type SyncWorld,
  seed,
  service,
  slice,
  startReplica,
  startWorld,
} from "../fixtures/sync-harness.ts";

/**
 * How discovery-sync treats the Cloudflare API and the cluster: backing off, retrying keys
 * together, never forgetting a delete, paging and selecting on the server, and not blanking a
 * pool while a Service's slices are replaced. The KV emulator enforces the API's own limits.
 */

const KEY = "pool:shop/api:http";
let world: SyncWorld;
const running: SyncDaemon[] = [];
const closing: KvRestEmulator[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()));
  await Promise.all(closing.splice(0).map((k) => k.close()));
  await world?.close();
});

async function replica(overrides: Partial<Settings> = {}, pageSize?: number) {
  const sync = await startReplica(world, overrides, { pageSize });
  running.push(sync);
  return sync;
}

const bulkPuts = () => world.kv.requests.filter((r) => r.startsWith("PUT") && r.endsWith("/bulk"));

describe("discovery-sync and the Cloudflare API", () => {
  it("waits out a 429's Retry-After without sending anything, then writes", async () => {
    world = await startWorld();
    seed(world.kube, {
      services: [service("shop", "api", 1).service],
      slices: [slice("shop", "api", "api-1", 1)],
    });
    world.kv.rateLimit(1, 2);
    const startedAt = Date.now();
    const sync = await replica();
    const write = await world.kv.nextWrite((w) => w.key === KEY, 10_000);
    expect(write.at - startedAt).toBeGreaterThanOrEqual(2_000);
    expect(world.kv.requests).toHaveLength(3); // the refused listing, the listing, the write
    const metrics = await (await fetch(`http://127.0.0.1:${sync.httpPort}/metrics`)).text();
    expect(metrics).toContain("switchyard_sync_kv_rate_limited_total 1");
  });

  it("retries the keys a bulk write refused together, in one later bulk write, after a back-off", async () => {
    world = await startWorld();
    const a = service("shop", "api", 1);
    const b = service("shop", "web", 1);
    seed(world.kube, { services: [a.service, b.service], slices: [a.slice, b.slice] });
    world.kv.failKeys([KEY]);
    await replica();
    await world.kv.nextWrite((w) => w.key === "pool:shop/web:http");
    const retried = await world.kv.nextWrite((w) => w.key === KEY, 5_000);
    expect(bulkPuts()).toHaveLength(2);
    expect(world.kv.requests.some((r) => r.includes("/values/"))).toBe(false);
    expect(world.kv.writes.filter((w) => w.key === "pool:shop/web:http")).toHaveLength(1);
    expect(retried.value).toBeDefined();
  });

  it("never forgets a delete the bulk delete reported unsuccessful", async () => {
    world = await startWorld();
    const a = service("shop", "api", 1);
    const b = service("shop", "web", 1);
    seed(world.kube, { services: [a.service, b.service], slices: [a.slice, b.slice] });
    const sync = await replica({ allowMassDelete: true });
    await world.kv.nextWrite((w) => w.key === "pool:shop/web:http");
    await sync.controller.idle();
    world.kv.failKeys([KEY]);
    const deleted = world.kv.nextWrite((w) => w.key === KEY && w.kind === "delete", 8_000);
    world.kube.store.delete("services", "shop", "api");
    await deleted;
    expect(world.kv.requests.filter((r) => r.endsWith("/bulk/delete"))).toHaveLength(2);
    expect(world.entries.has(KEY)).toBe(false);
  });

  it("merges a burst of changes into few write requests and stays within the token bucket", async () => {
    world = await startWorld();
    const services = Array.from({ length: 20 }, (_, i) => service("shop", `s${i}`, 1));
    seed(world.kube, {
      services: services.map((s) => s.service),
      slices: services.map((s) => s.slice),
    });
    const sync = await replica({ apiRatePerSecond: 2, apiBurst: 2, batchWindowMs: 300 });
    await world.kv.nextWrite((w) => w.key === "pool:shop/s19:http");
    await sync.controller.idle();
    const before = world.kv.requests.length;
    const startedAt = Date.now();
    for (let round = 2; round <= 6; round++) {
      for (let i = 0; i < 20; i++)
        world.kube.store.apply("endpointslices", slice("shop", `s${i}`, `s${i}-1`, round) as never);
      await new Promise((r) => setTimeout(r, 150));
    }
    await world.kv.nextWrite(
      (w) => w.key === "pool:shop/s19:http" && JSON.parse(w.value ?? "{}").endpoints?.length === 6,
      10_000,
    );
    const seconds = (Date.now() - startedAt) / 1000;
    const requests = world.kv.requests.length - before;
    expect(requests).toBeLessThanOrEqual(Math.ceil(2 + 2 * seconds));
    expect(requests).toBeLessThan(10); // 100 changes
  });
});

describe("the KV REST emulator enforces the API's limits", () => {
  it("blocks every request for the rest of the window once the account limit is reached", async () => {
    world = await startWorld();
    const kv = await startKvRest({ accountLimit: { requests: 3, windowMs: 2_000 } });
    closing.push(kv);
    const list = () =>
      fetch(`${kv.baseUrl}/accounts/${kv.accountId}/storage/kv/namespaces/${kv.namespaceId}/keys`, {
        headers: { authorization: `Bearer ${kv.token}` },
      });
    for (let i = 0; i < 3; i++) expect((await list()).status).toBe(200);
    const refused = await list();
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(((await refused.json()) as { success: boolean }).success).toBe(false);
    expect((await list()).status).toBe(429);
    expect(kv.rateLimited()).toBe(2);
  });

  it("refuses keys over 512 bytes, metadata over 1,024 bytes and bulk writes over 10,000 pairs", async () => {
    world = await startWorld();
    const bulk = (body: unknown) =>
      fetch(
        `${world.kv.baseUrl}/accounts/${world.kv.accountId}/storage/kv/namespaces/${world.kv.namespaceId}/bulk`,
        {
          method: "PUT",
          headers: {
            authorization: `Bearer ${world.kv.token}`,
            "content-type": "application/json",
          },
          body: JSON.stringify(body),
        },
      );
    const longKey = await bulk([{ key: `pool:${"k".repeat(508)}`, value: "{}" }]);
    expect(longKey.status).toBe(400);
    expect(JSON.stringify(await longKey.json())).toContain("the limit is 512");
    const bigMetadata = await bulk([
      { key: "pool:a", value: "{}", metadata: { x: "m".repeat(1_020) } },
    ]);
    expect(bigMetadata.status).toBe(400);
    expect(JSON.stringify(await bigMetadata.json())).toContain("the limit is 1024");
    const tooMany = await bulk(
      Array.from({ length: 10_001 }, (_, i) => ({ key: `pool:${i}`, value: "{}" })),
    );
    expect(tooMany.status).toBe(413);
    expect(world.entries.size).toBe(0);
  });
});

describe("discovery-sync and the cluster", () => {
  it("pages every LIST and lets the API server select Services with --service-selector", async () => {
    world = await startWorld();
    const services = Array.from({ length: 5 }, (_, i) => service("shop", `s${i}`, 1));
    for (const s of services)
      (s.service.metadata as { labels?: Record<string, string> }).labels = { edge: "yes" };
    seed(world.kube, {
      services: services.map((s) => s.service),
      slices: services.map((s) => s.slice),
    });
    await replica({ serviceSelector: "edge=yes" }, 2);
    await world.kv.nextWrite((w) => w.key === "pool:shop/s4:http");
    const lists = world.kube.requests.filter((r) => r.includes("limit=2") && !r.includes("watch="));
    expect(lists.filter((r) => r.startsWith("GET /api/v1/services?"))).toHaveLength(3);
    expect(
      lists.filter((r) => r.startsWith("GET /apis/discovery.k8s.io/v1/endpointslices?")),
    ).toHaveLength(3);
    expect(
      lists.every(
        (r) => !r.startsWith("GET /api/v1/services?") || r.includes("labelSelector=edge%3Dyes"),
      ),
    ).toBe(true);
  });

  it("lists a Service's slices again when it becomes selected, since unselected slices keep no endpoints", async () => {
    world = await startWorld();
    const { service: svc, slice: s } = service("shop", "api", 3);
    (svc.metadata.annotations as Record<string, string>)["switchyard.dev/publish"] = "false";
    seed(world.kube, { services: [svc], slices: [s] });
    const sync = await replica();
    await sync.controller.idle();
    expect(world.entries.has(KEY)).toBe(false);
    const published = world.kv.nextWrite((w) => w.key === KEY);
    world.kube.store.apply("services", {
      ...svc,
      metadata: { ...svc.metadata, annotations: { "switchyard.dev/publish": "true" } },
    } as never);
    await published;
    expect(poolOf(world, KEY)?.endpoints).toHaveLength(3);
    expect(
      world.kube.requests.some(
        (r) =>
          r.startsWith("GET /apis/discovery.k8s.io/v1/namespaces/shop/endpointslices?") &&
          r.includes("labelSelector=kubernetes.io%2Fservice-name%3Dapi"),
      ),
    ).toBe(true);
  });

  it("does not blank a pool while a Service's slices are replaced; publishes it empty after the grace period", async () => {
    world = await startWorld();
    const { service: svc, slice: s } = service("shop", "api", 2);
    seed(world.kube, { services: [svc], slices: [s] });
    const sync = await replica({ emptyGraceMs: 1_000 });
    await world.kv.nextWrite((w) => w.key === KEY);
    await sync.controller.idle();
    const writes = world.kv.writes.length;
    world.kube.store.delete("endpointslices", "shop", "api-1");
    await new Promise((r) => setTimeout(r, 500));
    world.kube.store.create("endpointslices", slice("shop", "api", "api-2", 2) as never);
    await new Promise((r) => setTimeout(r, 1_200)); // past the grace the first deletion started
    await sync.controller.idle();
    expect(world.kv.writes.length).toBe(writes); // same endpoints again: nothing to write
    const deletedAt = Date.now();
    const emptied = world.kv.nextWrite((w) => w.key === KEY, 5_000);
    world.kube.store.delete("endpointslices", "shop", "api-2");
    const write = await emptied;
    expect(write.at - deletedAt).toBeGreaterThanOrEqual(1_000);
    expect(poolOf(world, KEY)?.endpoints).toEqual([]);
  });
});
