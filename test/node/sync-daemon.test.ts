import { spawn } from "node:child_process";
import { once } from "node:events";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { SyncDaemon } from "../../discovery-sync/daemon.ts";
import type { ServicePort } from "../../discovery-sync/model.ts";
import type { Settings } from "../../discovery-sync/settings.ts";
import {
  poolOf,
  type SyncWorld,
  seed,
  service,
  slice,
  startReplica,
  startWorld,
} from "../fixtures/sync-harness.ts";

let world: SyncWorld;
const running: SyncDaemon[] = [];

beforeEach(async () => {
  world = await startWorld();
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()));
  await world.close();
});

/** A replica with short lease timings, so that a takeover fits in a test. */
async function replica(identity: string, overrides: Partial<Settings> = {}): Promise<SyncDaemon> {
  const sync = await startReplica(world, { identity, ...overrides });
  running.push(sync);
  return sync;
}

const KEY = "pool:shop/api:http";
const isPut = (key: string) => (w: { key: string; kind: string }) =>
  w.key === key && w.kind === "put";

describe("discovery-sync, running", () => {
  it("publishes on start and follows a change within 1.5 s", async () => {
    const { service: svc, slice: s } = service("shop", "api", 3);
    seed(world.kube, { services: [svc], slices: [s] });
    const first = world.kv.nextWrite(isPut(KEY));
    await replica("a");
    await first;
    expect(poolOf(world, KEY)?.endpoints).toHaveLength(3);
    const changed = world.kv.nextWrite(isPut(KEY), 1_500);
    const at = Date.now();
    world.kube.store.apply("endpointslices", slice("shop", "api", "api-1", 4) as never);
    const write = await changed;
    expect(write.at - at).toBeLessThan(1_500);
    expect(poolOf(world, KEY)).toMatchObject({ generation: 2 });
    expect(poolOf(world, KEY)?.endpoints).toHaveLength(4);
  });

  it("coalesces 50 changes to one Service in one second into at most 2 writes of its key", async () => {
    const { service: svc, slice: s } = service("shop", "api", 1);
    seed(world.kube, { services: [svc], slices: [s] });
    const sync = await replica("a");
    await world.kv.nextWrite(isPut(KEY));
    await sync.controller.idle();
    const before = world.kv.writes.length;
    const last = world.kv.nextWrite(
      (w) => isPut(KEY)(w) && poolOf(world, KEY)?.endpoints.length === 50,
      5_000,
    );
    for (let i = 1; i <= 50; i++) {
      world.kube.store.apply("endpointslices", slice("shop", "api", "api-1", i) as never);
      await new Promise((r) => setTimeout(r, 18)); // 50 changes spread over ~0.9 s
    }
    await last;
    const writes = world.kv.writes.slice(before).filter((w) => w.key === KEY);
    expect(writes.length).toBeLessThanOrEqual(2);
    for (let i = 1; i < world.kv.writes.length; i++) {
      const [a, b] = [world.kv.writes[i - 1]!, world.kv.writes[i]!];
      if (a.key === b.key) expect(b.at - a.at).toBeGreaterThanOrEqual(1_000);
    }
  });

  it("recovers from a dropped watch and from 410 Gone without ever publishing an empty pool", async () => {
    const { service: svc, slice: s } = service("shop", "api", 2);
    seed(world.kube, { services: [svc], slices: [s] });
    const sync = await replica("a");
    await world.kv.nextWrite(isPut(KEY));
    world.kube.dropWatches();
    const afterDrop = world.kv.nextWrite(isPut(KEY), 10_000);
    world.kube.store.apply("endpointslices", slice("shop", "api", "api-1", 3) as never);
    await afterDrop;
    expect(poolOf(world, KEY)?.endpoints).toHaveLength(3);

    // The history is compacted while the watches are down: resuming from the old
    // resourceVersion gets 410 Gone and the informers list again.
    world.kube.store.apply("endpointslices", slice("shop", "api", "api-1", 5) as never);
    world.kube.store.compact();
    world.kube.failLists(2);
    const after410 = world.kv.nextWrite(
      (w) => isPut(KEY)(w) && poolOf(world, KEY)?.endpoints.length === 5,
      15_000,
    );
    world.kube.dropWatches();
    await after410;
    const restarts = (await sync.metrics.restarts.get()).values.reduce(
      (sum: number, v: { value: number }) => sum + v.value,
      0,
    );
    expect(restarts).toBeGreaterThan(0);
    const sizes = world.kv.writes
      .filter((w) => w.key === KEY && w.kind === "put")
      .map((w) => JSON.parse(w.value!).endpoints.length);
    expect(sizes).not.toContain(0);
    expect(world.kv.writes.filter((w) => w.kind === "delete")).toEqual([]);
  });

  it("runs one writer among two replicas and hands over when the leader stops", async () => {
    const { service: svc, slice: s } = service("shop", "api", 2);
    seed(world.kube, { services: [svc], slices: [s] });
    const a = await replica("a");
    await world.kv.nextWrite(isPut(KEY));
    const b = await replica("b");
    await b.elector.settled(); // its first try at the lease has ended, and failed
    expect([a.elector.isLeader, b.elector.isLeader]).toEqual([true, false]);

    const stoppedAt = Date.now();
    await a.stop();
    running.splice(running.indexOf(a), 1);
    const takeover = world.kv.nextWrite(isPut(KEY), 5_000);
    world.kube.store.apply("endpointslices", slice("shop", "api", "api-1", 4) as never);
    await takeover;
    expect(b.elector.isLeader).toBe(true);
    expect(Date.now() - stoppedAt).toBeLessThan(2_000 + 1_000); // within the lease duration
  });

  it("a leader that loses its lease stops writing at once", async () => {
    const { service: svc, slice: s } = service("shop", "api", 2);
    seed(world.kube, { services: [svc], slices: [s] });
    const a = await replica("a");
    await world.kv.nextWrite(isPut(KEY));
    await a.controller.idle();
    // Someone else takes the lease (as after a network partition).
    const lease = world.kube.store.get("leases", "default", "switchyard-sync-default");
    world.kube.store.apply("leases", {
      ...lease,
      spec: {
        ...(lease.spec as object),
        holderIdentity: "intruder",
        renewTime: new Date(Date.now() + 60_000).toISOString(),
        leaseDurationSeconds: 60,
      },
    } as never);
    const lost = new Promise<void>((resolve) => {
      a.leadership.on("change", (leading: boolean) => {
        if (!leading) resolve();
      });
    });
    await lost;
    const writes = world.kv.writes.length;
    world.kube.store.apply("endpointslices", slice("shop", "api", "api-1", 7) as never);
    // Let the change reach the informer and the controller run its pass, which must write nothing.
    await new Promise<void>((resolve) => {
      const check = () =>
        a.source.view().slicesByService.get("shop/api")?.[0]?.endpoints?.length === 7
          ? resolve()
          : setTimeout(check, 10);
      check();
    });
    await a.controller.idle();
    expect(world.kv.writes.length).toBe(writes);
  });

  it("answers /healthz, /readyz and /metrics", async () => {
    const { service: svc, slice: s } = service("shop", "api", 2);
    seed(world.kube, { services: [svc], slices: [s] });
    const a = await replica("a");
    await world.kv.nextWrite(isPut(KEY));
    const base = `http://127.0.0.1:${a.httpPort}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({
      informers: { services: "synced", endpointslices: "synced" },
    });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    for (const name of [
      "switchyard_sync_kv_writes_total",
      "switchyard_sync_pools 1",
      "switchyard_sync_endpoints 2",
      "switchyard_sync_event_to_kv_seconds_bucket",
      "switchyard_sync_leader 1",
    ]) {
      expect(metrics).toContain(name);
    }
  });

  it("watches Nodes only once a selected Service's template needs them", async () => {
    const { service: svc, slice: s } = service("shop", "api", 1);
    seed(world.kube, { services: [svc], slices: [s] });
    const a = await replica("a", { allowUrlTemplate: ["shop"] });
    await world.kv.nextWrite(isPut(KEY));
    expect(world.kube.requests.some((r) => r.includes("/nodes"))).toBe(false);
    const port: ServicePort = { name: "http", port: 80, nodePort: 30080 };
    const nodeKey = "pool:shop/edge:http";
    world.kube.store.create("nodes", {
      metadata: { name: "node-1" },
      status: { conditions: [{ type: "Ready", status: "True" }] },
    } as never);
    const published = world.kv.nextWrite(isPut(nodeKey), 10_000);
    world.kube.store.create("services", {
      metadata: {
        name: "edge",
        namespace: "shop",
        annotations: {
          "switchyard.dev/publish": "true",
          "switchyard.dev/url-template": "https://{node}.example.com:{nodePort}",
        },
      },
      spec: { ports: [port] },
    } as never);
    world.kube.store.create("endpointslices", {
      ...slice("shop", "edge", "edge-1", 1),
      endpoints: [{ addresses: ["10.2.0.1"], nodeName: "node-1" }],
    } as never);
    await published;
    expect(poolOf(world, nodeKey)?.endpoints).toEqual([
      { url: "https://node-1.example.com:30080" },
    ]);
    expect(a.source.status).toMatchObject({ nodes: "synced" });
  });
});

describe("npm run sync, as a process", () => {
  it("finishes on SIGTERM with exit 0 and releases its Lease", async () => {
    const { service: svc, slice: s } = service("shop", "api", 2);
    seed(world.kube, { services: [svc], slices: [s] });
    const written = world.kv.nextWrite(isPut(KEY), 20_000);
    const child = spawn("npm", ["run", "--silent", "sync", "--", "--http-port", "0"], {
      env: world.env({ POD_NAME: "sync-0" }),
      stdio: ["ignore", "ignore", "inherit"],
    });
    await written;
    child.kill("SIGTERM");
    const [code] = (await once(child, "exit")) as [number];
    expect(code).toBe(0);
    const lease = world.kube.store.get("leases", "default", "switchyard-sync-default") as {
      spec?: { holderIdentity?: string };
    };
    expect(lease.spec?.holderIdentity).toBeUndefined();
  }, 30_000);
});
