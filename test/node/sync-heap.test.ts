import { spawn } from "node:child_process";
import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freeLoopbackPort } from "../../local/listen.ts";
import { type SyncWorld, seed, service, startWorld, until } from "../fixtures/sync-harness.ts";

/**
 * A cluster larger than the heap: `npm run sync` with a heap too small for it says so, naming
 * SYNC_HEAP_MB and what it held, is not ready, writes nothing, and lives on — instead of V8
 * killing it in the middle of its list and the kubelet restarting it into the same list.
 */

let world: SyncWorld;
beforeAll(async () => {
  world = await startWorld();
  const services = [];
  const slices = [];
  for (let i = 0; i < 8_000; i++) {
    const { service: svc, slice } = service(`ns-${i % 20}`, `svc-${i}`, 40);
    services.push(svc);
    slices.push(slice);
  }
  seed(world.kube, { services, slices });
});
afterAll(() => world.close());

describe("a cluster larger than the heap", () => {
  it("gives the clear error and a not-ready /readyz, not a crash", async () => {
    const port = await freeLoopbackPort();
    const child = spawn("npm", ["run", "--silent", "sync", "--", "--http-port", String(port)], {
      env: world.env({ POD_NAME: "sync-0", SYNC_HEAP_MB: "64", LOG_LEVEL: "error" }),
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
    });
    let exited: number | null | undefined;
    child.once("exit", (code) => {
      exited = code;
    });
    try {
      await until(() => out.includes("does not fit in the heap"), "the heap error", 60_000);
      const line = JSON.parse(
        out.split("\n").find((l) => l.includes("does not fit in the heap")) as string,
      ) as { level: number; msg: string; services: number; endpoints: number; limitMiB: number };
      expect(line.level).toBe(50);
      expect(line.msg).toContain("raise SYNC_HEAP_MB");
      expect(line.services).toBeGreaterThan(0);
      expect(line.limitMiB).toBeGreaterThan(0);
      const readyz = await fetch(`http://127.0.0.1:${port}/readyz`);
      expect(readyz.status).toBe(503);
      expect(await readyz.json()).toMatchObject({
        ready: false,
        heap: { reason: "the cluster does not fit in the heap: raise SYNC_HEAP_MB" },
      });
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(metrics).toMatch(/^switchyard_sync_heap_exhausted 1$/m);
      expect(world.entries.size).toBe(0); // never a partial view
      expect(exited).toBeUndefined(); // alive, not in a crash loop
    } finally {
      child.kill("SIGTERM");
      if (exited === undefined) await once(child, "exit");
    }
  }, 90_000);
});
