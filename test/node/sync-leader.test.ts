import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import type { SyncDaemon } from "../../discovery-sync/daemon.ts";
import { parseMicroTime } from "../../discovery-sync/kube-time.ts";
import type { Settings } from "../../discovery-sync/settings.ts";
import { type KubeApi, startKubeApi } from "../../local/emulators/kube-api.ts";
import {
  poolOf,
  type SyncWorld,
  seed,
  service,
  slice,
  startReplica,
  startWorld,
  until,
} from "../fixtures/sync-harness.ts";

/**
 * Leadership against the strict Kubernetes emulator: what a replica does when its Lease calls
 * fail, when clocks disagree, when it is cut off mid-write, and when its process is killed.
 */

const MAIN = fileURLToPath(new URL("../../discovery-sync/main.ts", import.meta.url));
const KEY = "pool:shop/api:http";

let world: SyncWorld;
const running: SyncDaemon[] = [];
const doors: KubeApi[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()));
  await Promise.all(doors.splice(0).map((d) => d.close()));
  await world?.close();
});

async function replica(identity: string, overrides: Partial<Settings> = {}, kubeUrl?: string) {
  const sync = await startReplica(world, { identity, ...overrides }, { kubeUrl });
  running.push(sync);
  return sync;
}

const leaseOf = () =>
  world.kube.store.get("leases", "default", "switchyard-sync-default") as unknown as {
    metadata: { resourceVersion: string };
    spec: Record<string, unknown>;
  };

async function get(sync: SyncDaemon, path: string) {
  const response = await fetch(`http://127.0.0.1:${sync.httpPort}${path}`);
  return { status: response.status, text: await response.text() };
}

describe("discovery-sync leadership", () => {
  it("writes Lease times the API server accepts: MicroTime with six fractional digits", async () => {
    world = await startWorld();
    seed(world.kube, {
      services: [service("shop", "api", 1).service],
      slices: [slice("shop", "api", "api-1", 1)],
    });
    await replica("a");
    await world.kv.nextWrite((w) => w.key === KEY);
    const spec = leaseOf().spec;
    expect(spec.renewTime).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/);
    expect(spec.acquireTime).toMatch(/\.\d{6}Z$/);
    expect(parseMicroTime(spec.renewTime)).toBeGreaterThan(Date.now() - 5_000);
    expect(spec).toMatchObject({
      holderIdentity: "a",
      leaseDurationSeconds: 2,
      leaseTransitions: 0,
    });
  });

  it("is not ready, says why in /readyz, metrics and logs, and writes nothing while its Lease calls fail", async () => {
    world = await startWorld(); // the base RBAC: only switchyard-sync-default
    seed(world.kube, {
      services: [service("shop", "api", 1).service],
      slices: [slice("shop", "api", "api-1", 1)],
    });
    const eu1 = await replica("a", {
      poolPrefix: "eu1",
      owner: "eu1",
      leaseName: "switchyard-sync-eu1",
    });
    await until(() => eu1.elector.state.role === "lease-error", "the Lease error");
    const ready = await get(eu1, "/readyz");
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.text)).toMatchObject({
      ready: false,
      leader: false,
      lease: { role: "lease-error" },
      informers: { services: "synced", endpointslices: "synced" },
    });
    expect(JSON.parse(ready.text).lease.reason).toContain("403");
    expect(JSON.parse(ready.text).lease.reason).toContain("RBAC");
    const metrics = (await get(eu1, "/metrics")).text;
    expect(metrics).toContain('switchyard_sync_leadership{state="lease-error"} 1');
    expect(metrics).toContain('switchyard_sync_leadership{state="leading"} 0');
    expect(metrics).toContain('switchyard_sync_lease_errors_total{status="403"}');
    expect(metrics).toContain("switchyard_sync_ready 0");
    expect(world.kv.writes).toEqual([]);
  });

  it("leads with --cluster when the RBAC names its Lease, and a standby that reads the Lease is ready", async () => {
    world = await startWorld({ leaseNames: ["switchyard-sync-eu1"] }); // as the example overlay
    seed(world.kube, {
      services: [service("shop", "api", 1).service],
      slices: [slice("shop", "api", "api-1", 1)],
    });
    const eu1 = { poolPrefix: "eu1", owner: "eu1", leaseName: "switchyard-sync-eu1" };
    const a = await replica("a", eu1);
    await world.kv.nextWrite((w) => w.key === "pool:eu1/shop/api:http");
    const b = await replica("b", eu1);
    await until(() => b.elector.state.role === "standby", "b to stand by");
    expect(b.elector.state.reason).toBe("held by a");
    expect((await get(a, "/readyz")).status).toBe(200);
    expect((await get(b, "/readyz")).status).toBe(200);
    expect((await get(b, "/metrics")).text).toContain(
      'switchyard_sync_leadership{state="standby"} 1',
    );
  });

  it("judges expiry by when it saw the Lease change, not by the holder's clock", async () => {
    world = await startWorld();
    seed(world.kube, {
      services: [service("shop", "api", 1).service],
      slices: [slice("shop", "api", "api-1", 1)],
    });
    // A holder whose clock is an hour behind, still renewing: its renewTime looks an hour old.
    const renew = () =>
      world.kube.store.apply("leases", {
        metadata: { name: "switchyard-sync-default", namespace: "default" },
        spec: {
          holderIdentity: "behind",
          leaseDurationSeconds: 2,
          renewTime: new Date(Date.now() - 3_600_000).toISOString().replace("Z", "000Z"),
          leaseTransitions: 3,
        },
      });
    renew();
    const renewals = setInterval(renew, 300);
    const a = await replica("a");
    await new Promise((r) => setTimeout(r, 2_500)); // longer than the lease, while it is renewed
    expect(a.elector.isLeader).toBe(false);
    expect(a.elector.state).toMatchObject({ role: "standby", reason: "held by behind" });
    // The holder stops renewing: the Lease is taken one lease duration after the last change seen.
    clearInterval(renewals);
    const stoppedAt = Date.now();
    const tookAt = await until(() => a.elector.isLeader, "a to take the Lease");
    expect(tookAt - stoppedAt).toBeGreaterThanOrEqual(1_500);
    expect(tookAt - stoppedAt).toBeLessThan(2_000 + 1_000);
    expect(leaseOf().spec).toMatchObject({ holderIdentity: "a", leaseTransitions: 4 });

    // A holder whose clock is an hour ahead and who died: its renewTime looks fresh for an hour,
    // yet the Lease is taken one lease duration after it stopped changing.
    await Promise.all(running.splice(0).map((s) => s.stop()));
    world.kube.store.apply("leases", {
      metadata: { name: "switchyard-sync-default", namespace: "default" },
      spec: {
        holderIdentity: "ahead",
        leaseDurationSeconds: 2,
        renewTime: new Date(Date.now() + 3_600_000).toISOString().replace("Z", "000Z"),
      },
    });
    const startedAt = Date.now();
    const b = await replica("b");
    const bTook = await until(() => b.elector.isLeader, "b to take the Lease");
    expect(bTook - startedAt).toBeLessThan(2_000 + 1_000);
  });

  it("a leader cut off from the API server stops within the renew deadline and aborts its write in flight", async () => {
    world = await startWorld();
    seed(world.kube, {
      services: [service("shop", "api", 2).service],
      slices: [slice("shop", "api", "api-1", 2)],
    });
    // Two doors to one cluster: a reaches it through one, b through the other.
    const doorA = await startKubeApi({ store: world.kube.store });
    doors.push(doorA);
    const a = await replica("a", {}, doorA.url);
    await world.kv.nextWrite((w) => w.key === KEY);
    const b = await replica("b");
    await until(() => b.elector.state.role === "standby", "b to stand by");
    await a.controller.idle();

    const changes: string[] = [];
    a.leadership.on("change", (leading: boolean) => changes.push(`a ${leading} ${Date.now()}`));
    b.leadership.on("change", (leading: boolean) => changes.push(`b ${leading} ${Date.now()}`));
    world.kv.stallWrites(true);
    world.kube.store.apply("endpointslices", slice("shop", "api", "api-1", 3) as never);
    await until(
      () => world.kv.requests.filter((r) => r.endsWith("/bulk")).length >= 2,
      "a's write to be in flight",
    );
    const cutAt = Date.now();
    doorA.hang(true);
    await until(
      () => !a.elector.isLeader && changes.some((c) => c.startsWith("a false")),
      "a to stop leading",
    );
    const stoppedAt = Number(changes.find((c) => c.startsWith("a false"))?.split(" ")[2]);
    expect(stoppedAt - cutAt).toBeLessThanOrEqual(1_500 + 300);
    await until(() => world.kv.abandonedWrites() >= 1, "a's write to be aborted");
    await until(() => b.elector.isLeader, "b to take over", 5_000);
    const bStarted = Number(changes.find((c) => c.startsWith("b true"))?.split(" ")[2]);
    expect(bStarted).toBeGreaterThan(stoppedAt); // never two writers
    const written = world.kv.nextWrite((w) => w.key === KEY);
    world.kv.stallWrites(false);
    await written;
    expect(poolOf(world, KEY)?.endpoints).toHaveLength(3);
    expect(a.elector.isLeader).toBe(false);
  });
});

describe("npm run sync, two replicas as processes", () => {
  it("elect one leader; when it is killed the other takes over within the lease duration", async () => {
    world = await startWorld();
    seed(world.kube, {
      services: [service("shop", "api", 2).service],
      slices: [slice("shop", "api", "api-1", 2)],
    });
    const args = [
      "--lease-duration",
      "2s",
      "--renew-deadline",
      "1500ms",
      "--retry-period",
      "250ms",
      "--http-port",
      "0",
    ];
    const start = (name: string) =>
      spawn(process.execPath, [MAIN, ...args], {
        env: world.env({ POD_NAME: name }),
        stdio: ["ignore", "ignore", "inherit"],
      });
    const children = { "sync-0": start("sync-0"), "sync-1": start("sync-1") };
    try {
      await world.kv.nextWrite((w) => w.key === KEY, 20_000);
      const holder = leaseOf().spec.holderIdentity as keyof typeof children;
      const other = holder === "sync-0" ? "sync-1" : "sync-0";
      expect(Object.keys(children)).toContain(holder);
      const writesBefore = world.kv.writes.length;
      children[holder].kill("SIGKILL");
      await once(children[holder], "exit");
      const killedAt = Date.now();
      const tookAt = await until(
        () => leaseOf().spec.holderIdentity === other,
        "the other to take the Lease",
        10_000,
      );
      expect(tookAt - killedAt).toBeLessThan(2_000 + 1_000);
      expect(leaseOf().spec.leaseTransitions).toBe(1);
      const written = world.kv.nextWrite((w) => w.key === KEY && w.at > tookAt, 10_000);
      world.kube.store.apply("endpointslices", slice("shop", "api", "api-1", 4) as never);
      await written;
      expect(poolOf(world, KEY)?.endpoints).toHaveLength(4);
      expect(world.kv.writes.length).toBeGreaterThan(writesBefore);
    } finally {
      for (const child of Object.values(children))
        if (child.exitCode === null) child.kill("SIGKILL");
    }
  }, 40_000);
});
