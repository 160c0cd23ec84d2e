import { spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FIXTURES, loadFixture } from "../fixtures/kube-fixtures.ts";
import { poolOf, type SyncWorld, seed, service, startWorld } from "../fixtures/sync-harness.ts";

const MAIN = fileURLToPath(new URL("../../discovery-sync/main.ts", import.meta.url));

async function sync(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, ...args], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => {
    stdout += d;
  });
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const [code] = (await once(child, "exit")) as [number];
  return { code, stdout, stderr };
}

let world: SyncWorld;
beforeEach(async () => {
  world = await startWorld();
});
afterEach(async () => {
  await world.close();
});

describe("npm run sync -- --once", () => {
  it("publishes every fixture's pools, with ownership metadata, and makes no Lease request", async () => {
    for (const name of ["basic", "conditions", "multi-port", "selection"])
      seed(world.kube, loadFixture(join(FIXTURES, name)));
    const result = await sync(["--once"], world.env());
    expect(result.code, result.stderr).toBe(0);
    expect([...world.entries.keys()].sort()).toEqual([
      "pool:shop/api:http",
      "pool:shop/mixed:admin",
      "pool:shop/mixed:http",
      "pool:shop/scaled-to-zero:http",
      "pool:shop/single:8000",
      "pool:shop/web:http",
    ]);
    expect(poolOf(world, "pool:shop/api:http")).toMatchObject({
      version: 1,
      generation: 1,
      endpoints: [{ url: "http://10.0.0.1:8080" }, { url: "http://10.0.0.2:8080" }],
    });
    expect(world.entries.get("pool:shop/api:http")?.metadata).toMatchObject({
      owner: "switchyard-sync",
      cluster: "default",
      generation: 1,
    });
    expect(world.kube.requests.filter((r) => r.includes("leases"))).toEqual([]);
    expect(world.kv.requests.filter((r) => r.startsWith("PUT")).length).toBe(1); // one bulk write
  });

  it("writes nothing when nothing changed, and continues the generation when something did", async () => {
    const { service: svc, slice } = service("shop", "api", 2);
    seed(world.kube, { services: [svc], slices: [slice] });
    expect((await sync(["--once"], world.env())).code).toBe(0);
    const writes = world.kv.writes.length;
    expect((await sync(["--once"], world.env())).code).toBe(0);
    expect(world.kv.writes.length).toBe(writes);
    world.kube.store.apply("endpointslices", {
      ...slice,
      endpoints: slice.endpoints.slice(0, 1),
    } as never);
    expect((await sync(["--once"], world.env())).code).toBe(0);
    expect(poolOf(world, "pool:shop/api:http")).toMatchObject({
      generation: 2,
      endpoints: [{ url: "http://10.1.0.2:8080" }],
    });
  });

  it("prints the plan with --dry-run and writes nothing; --json gives it as JSON", async () => {
    seed(world.kube, loadFixture(join(FIXTURES, "basic")));
    world.entries.set("pool:shop/gone:http", {
      value: "{}",
      metadata: { owner: "switchyard-sync", cluster: "default", generation: 4, hash: "x" },
    });
    world.entries.set("pool:hand-kept", { value: "{}", metadata: null });
    world.entries.set("pool:shop/kept:http", {
      value: "{}",
      metadata: { owner: "switchyard-sync", cluster: "default", generation: 1, hash: "y" },
    });
    const text = await sync(["--dry-run"], world.env());
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout.split("\n")).toEqual([
      "put pool:shop/api:http (2 endpoints)",
      "refused delete pool:shop/gone:http: more than half of the owned pools would go (--allow-mass-delete)",
      "refused delete pool:shop/kept:http: more than half of the owned pools would go (--allow-mass-delete)",
      "1 to put, 0 to delete, 0 unchanged (dry run: nothing written)",
      "",
    ]);
    const json = await sync(["--dry-run", "--json", "--allow-mass-delete"], world.env());
    expect(JSON.parse(json.stdout)).toEqual({
      puts: [{ key: "pool:shop/api:http", endpoints: 2, generation: 1 }],
      deletes: ["pool:shop/gone:http", "pool:shop/kept:http"],
      conflicts: [],
      refusedDeletes: [],
      held: [],
      unchanged: 0,
    });
    expect(world.kv.writes).toEqual([]);
  });

  it("refuses a mass delete: applies the writes, deletes nothing, exits 3", async () => {
    const { service: svc, slice } = service("shop", "api", 1);
    seed(world.kube, { services: [svc], slices: [slice] });
    for (const name of ["a", "b"])
      world.entries.set(`pool:shop/${name}:http`, {
        value: "{}",
        metadata: { owner: "switchyard-sync", cluster: "default", generation: 1, hash: "x" },
      });
    const result = await sync(["--once"], world.env());
    expect(result.code).toBe(3);
    expect(result.stdout + result.stderr).toContain(
      "refusing to delete more than half of the owned pools",
    );
    expect(world.entries.has("pool:shop/api:http")).toBe(true);
    expect(world.entries.has("pool:shop/a:http")).toBe(true);
    expect((await sync(["--once", "--allow-mass-delete"], world.env())).code).toBe(0);
    expect(world.entries.has("pool:shop/a:http")).toBe(false);
  });

  it("never writes another cluster's or a hand-kept key, and prefixes pools with --cluster", async () => {
    const { service: svc, slice } = service("shop", "api", 1);
    seed(world.kube, { services: [svc], slices: [slice] });
    world.entries.set("pool:eu1/shop/api:http", { value: "hand", metadata: null });
    const result = await sync(["--once", "--cluster", "eu1"], world.env());
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("conflict");
    expect(world.entries.get("pool:eu1/shop/api:http")?.value).toBe("hand");
    const other = await sync(["--once", "--cluster", "us1"], world.env());
    expect(other.code).toBe(0);
    expect(world.entries.get("pool:us1/shop/api:http")?.metadata).toMatchObject({ cluster: "us1" });
  });

  it("exits 3 and writes nothing when listing the cluster fails", async () => {
    seed(world.kube, loadFixture(join(FIXTURES, "basic")));
    world.kube.failLists(10);
    const result = await sync(["--once"], world.env());
    expect(result.code).toBe(3);
    expect(world.kv.writes).toEqual([]);
  });

  it("survives a 429 storm, waiting out Retry-After", async () => {
    seed(world.kube, loadFixture(join(FIXTURES, "basic")));
    world.kv.rateLimit(3, 1);
    const result = await sync(["--once"], world.env());
    expect(result.code, result.stderr).toBe(0);
    const limited = world.kv.requests.length;
    expect(limited).toBeGreaterThanOrEqual(5); // 3 refused, then the list and the write
    expect(world.entries.has("pool:shop/api:http")).toBe(true);
  });

  it("retries keys a bulk write reports as unsuccessful together, in one more bulk write", async () => {
    seed(world.kube, loadFixture(join(FIXTURES, "multi-port")));
    world.kv.failKeys(["pool:shop/mixed:admin"]);
    const result = await sync(["--once"], world.env());
    expect(result.code, result.stderr).toBe(0);
    expect(world.entries.get("pool:shop/mixed:admin")?.metadata).toMatchObject({
      owner: "switchyard-sync",
    });
    const bulk = "PUT /client/v4/accounts/local-account/storage/kv/namespaces/local-namespace/bulk";
    expect(world.kv.requests.filter((r) => r === bulk)).toHaveLength(2);
    expect(world.kv.requests.some((r) => r.includes("/values/"))).toBe(false);
    expect(world.kv.writes.filter((w) => w.key === "pool:shop/mixed:admin")).toHaveLength(1);
  });

  it("exits 3 when keys still fail after its attempts, and says which", async () => {
    seed(world.kube, loadFixture(join(FIXTURES, "multi-port")));
    world.kv.failKeys(["pool:shop/mixed:admin"], 100);
    const result = await sync(["--once"], world.env());
    expect(result.code).toBe(3);
    expect(result.stderr + result.stdout).toContain("pool:shop/mixed:admin");
  }, 60_000);

  it("lists every missing or malformed setting at once and exits 2 without a request", async () => {
    const result = await sync(
      [
        "--once",
        "--cluster",
        "EU 1",
        "--resync",
        "soon",
        "--allow-transport-binding",
        "shop",
        "--bogus",
      ],
      {
        PATH: process.env.PATH,
        KUBECONFIG: world.kubeconfigPath,
        CLOUDFLARE_API_BASE_URL: "ftp://x",
      },
    );
    expect(result.code).toBe(2);
    for (const expected of [
      "Unknown option '--bogus'",
      "CLOUDFLARE_API_TOKEN is not set",
      "CLOUDFLARE_ACCOUNT_ID is not set",
      "SWITCHYARD_KV_NAMESPACE_ID is not set",
      "CLOUDFLARE_API_BASE_URL must be an http(s) URL",
      '--cluster must be a lower-case DNS label such as "eu1", got "EU 1"',
      '--resync must be a duration of at least 1s such as "5m", got "soon"',
      '--allow-transport-binding must be NAMESPACE=BINDING such as "shop=VPC_SHOP", got "shop"',
    ]) {
      expect(result.stderr).toContain(expected);
    }
    expect(world.kube.requests).toEqual([]);
    expect(world.kv.requests).toEqual([]);
  });
});
