import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

/**
 * `npm start` end to end, on its own ports and KV state: the demo cluster in the Kubernetes
 * emulator reaches the worker through discovery-sync and the KV REST endpoint, and Ctrl-C
 * (SIGINT to the process group, as a terminal sends it) stops every process it started.
 */

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const execFileAsync = promisify(execFile);

/** GET / with a Host header (fetch does not let one set Host). */
function get(port: number, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port, path: "/", headers: { host }, timeout: 5_000 },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk) => {
          body += chunk;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error(`GET / for ${host} took over 5 s`)));
    req.end();
  });
}

/** GET a JSON path of the worker with headers (the admin API). */
function getJson(
  port: number,
  path: string,
  headers: Record<string, string>,
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, headers }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => {
        body += chunk;
      });
      res.on("end", () => resolve(JSON.parse(body) as Record<string, unknown>));
    });
    req.on("error", reject);
    req.end();
  });
}

function portOpen(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

describe("npm start", () => {
  it("serves the demo through the whole loop and stops everything on Ctrl-C", async () => {
    const port = 18_600 + Math.floor(Math.random() * 90);
    const kubePort = port + 100;
    const state = await mkdtemp(join(tmpdir(), "switchyard-start-"));
    const env = {
      ...process.env,
      PORT: String(port),
      KUBE_PORT: String(kubePort),
      KV_PORT: String(port + 200),
      SWITCHYARD_STATE_DIR: state,
    };
    const child = spawn("npm", ["start"], {
      cwd: ROOT,
      env,
      stdio: ["ignore", "pipe", "inherit"],
      detached: true,
    });
    let output = "";
    const ready = new Promise<void>((resolve) => {
      child.stdout.on("data", (chunk) => {
        output += chunk;
        if (output.includes("Switchyard is serving on")) resolve();
      });
    });
    try {
      await ready;
      // The shop route's pools come from discovery-sync, and the worker refreshes every 2 s:
      // nothing outside announces when they arrive, so ask until they do (at most 30 s).
      const seen = new Set<string>();
      const deadline = Date.now() + 30_000;
      while (seen.size < 3 && Date.now() < deadline) {
        const response = await get(port, "shop.localhost");
        if (response.status === 200)
          seen.add((JSON.parse(response.body) as { backend: string }).backend);
        else await new Promise((r) => setTimeout(r, 250));
      }
      expect(seen).toEqual(new Set(["web-1", "web-2", "web-canary"]));
      expect(output).toContain("Dashboard: ");

      // README step 3: a hostname added with `switchyard push --local`, which also writes the
      // compiled layout, is served within the worker's refresh.
      const doc = JSON.parse(await readFile(join(ROOT, "demo/routes.json"), "utf8"));
      doc.routes[0].hostnames.push("www.shop.localhost");
      const file = join(state, "routes.json");
      await writeFile(file, JSON.stringify(doc));
      const pushed = await execFileAsync(
        process.execPath,
        [join(ROOT, "cli/switchyard.ts"), "push", file, "--local", "--force"],
        { cwd: ROOT, env },
      );
      expect(pushed.stdout).toContain("pushed");
      let status = 0;
      const pushDeadline = Date.now() + 20_000;
      while (status !== 200 && Date.now() < pushDeadline) {
        status = (await get(port, "www.shop.localhost")).status;
        if (status !== 200) await new Promise((r) => setTimeout(r, 250));
      }
      expect(status).toBe(200);
      const admin = await getJson(port, "/__switchyard/status", {
        authorization: "Bearer local-admin-token-for-npm-start-only",
      });
      expect(admin.layout).toMatchObject({ shards: 1, shardsRead: 1 });
    } finally {
      process.kill(-(child.pid as number), "SIGINT");
      await once(child, "exit");
      await rm(state, { recursive: true, force: true });
    }
    expect(await portOpen(port)).toBe(false);
    expect(await portOpen(kubePort)).toBe(false);
    expect(await portOpen(9200, "127.0.0.2")).toBe(false);
  }, 90_000);
});
