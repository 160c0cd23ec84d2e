import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnWranglerDev } from "../../cli/wrangler.ts";
import { type Backend, closedPortUrl, startBackend } from "../../local/backends.ts";
import { miniflareKv } from "../../local/emulators/miniflare-kv.ts";

/**
 * The dashboard in headless Chromium (Debian's chromium, driven by playwright-core), against
 * the worker under wrangler dev with routes and a pool in its local KV. It saves a screenshot.
 */

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const PORT = 18_900 + Math.floor(Math.random() * 90);
const TOKEN = "dashboard-test-token-of-32-characters";
let dir: string;
let dev: ChildProcess;
let backend: Backend;
let canary: Backend;
let closed: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "switchyard-dashboard-"));
  backend = await startBackend("web-1");
  canary = await startBackend("web-canary");
  closed = await closedPortUrl();
  const kv = await miniflareKv(dir, "00000000000000000000000000000000");
  await kv.put("routes", {
    value: JSON.stringify({
      version: 1,
      routes: [
        {
          name: "shop",
          hostnames: ["shop.localhost"],
          rules: [
            {
              name: "web",
              backendRefs: [
                { pool: "demo/web:http", weight: 80 },
                { pool: "demo/web-canary:http", weight: 20 },
              ],
            },
          ],
        },
      ],
    }),
    metadata: null,
  });
  await kv.put("pool:demo/web:http", {
    value: JSON.stringify({
      version: 1,
      generation: 7,
      endpoints: [
        { url: backend.url },
        { url: closed },
        { url: "http://127.0.0.9:1", state: "draining" },
      ],
    }),
    metadata: null,
  });
  await kv.put("pool:demo/web-canary:http", {
    value: JSON.stringify({ version: 1, generation: 3, endpoints: [{ url: canary.url }] }),
    metadata: null,
  });
  await kv.dispose();
  dev = spawnWranglerDev({ port: PORT, persistTo: dir, vars: { ADMIN_TOKEN: TOKEN } });
  dev.stdout?.setEncoding("utf8");
  await new Promise<void>((resolve, reject) => {
    dev.stdout?.on("data", (chunk: string) => chunk.includes("Ready on") && resolve());
    dev.once("exit", (code) => reject(new Error(`wrangler dev exited ${code}`)));
  });
}, 60_000);

afterAll(async () => {
  dev?.kill("SIGTERM");
  if (dev && dev.exitCode === null) await once(dev, "exit");
  await backend?.close();
  await canary?.close();
  await rm(dir, { recursive: true, force: true });
});

/** A GET with a Host header (fetch cannot set one), answered with its status and headers. */
function get(
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("the dashboard", () => {
  it("asks for the token, then shows routes, pools, endpoint states and health", async () => {
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1200, height: 640 } });
      await page.goto(`http://127.0.0.1:${PORT}/__switchyard/`);
      await page.locator("#login").waitFor({ state: "visible" });
      await page.fill("#token", TOKEN);
      await page.click("#login button");
      await page.locator("#pools tr").first().waitFor();
      expect(await page.locator("#login").isVisible()).toBe(false);
      expect(await page.locator("#routes").textContent()).toContain("shop.localhost");
      const pools = (await page.locator("#pools").textContent()) ?? "";
      expect(pools).toContain("demo/web:http");
      expect(pools).toContain(backend.url);
      expect(pools).toContain("draining");
      expect(await page.locator("#generation").textContent()).toMatch(
        /^generation [0-9a-f]{14} · loaded \d+ s ago$/,
      );
      // Traffic: 80 requests, of which the closed endpoint fails its share until it is ejected.
      // For the screenshot in the docs, spread over a minute so that the charts have a history.
      const rounds = process.env.SWITCHYARD_SCREENSHOT ? 7 : 1;
      for (let round = 0; round < rounds; round++) {
        if (round > 0) await new Promise((resolve) => setTimeout(resolve, 10_000));
        for (let i = 0; i < 80 - round * 9; i++) {
          const answer = await get(`http://127.0.0.1:${PORT}/`, { host: "shop.localhost" });
          expect(answer.status).toBe(200);
          // The backend's Keep-Alive stays on its hop: the runtime drops it on the way out, so
          // the worker passes the response through without a copy.
          expect(answer.headers["keep-alive"]).toBeUndefined();
        }
      }
      await page.locator("#traffic svg").first().waitFor();
      const traffic = (await page.locator("#traffic").textContent()) ?? "";
      expect(traffic).toContain(backend.url);
      expect(traffic).toContain(canary.url);
      expect(traffic).toContain(closed); // its failed tries
      expect(await page.locator("#traffic-note").textContent()).toContain("isolate");
      const split = (await page.locator("#split").textContent()) ?? "";
      expect(split).toContain("shop / web");
      expect(split).toContain("80%");
      expect(split).toContain("20%");
      await page
        .locator("#ejections tr td", { hasText: "requests failed within 10 s" })
        .first()
        .waitFor();
      expect(await page.locator("#generations tr").count()).toBe(1);
      expect(await page.locator("#traffic rect[fill='#00a32a']").count()).toBeGreaterThan(0);
      const shot = join(dir, "dashboard.png");
      await page.screenshot({ path: shot, fullPage: true });
      expect((await stat(shot)).size).toBeGreaterThan(10_000);
      expect((await readFile(shot)).subarray(1, 4).toString()).toBe("PNG");
      if (process.env.SWITCHYARD_SCREENSHOT)
        await page.screenshot({ path: process.env.SWITCHYARD_SCREENSHOT, fullPage: true });
    } finally {
      await browser.close();
    }
  }, 150_000);

  it("is what `switchyard status` reads", async () => {
    const { execFile } = await import("node:child_process");
    const cli = fileURLToPath(new URL("../../cli/switchyard.ts", import.meta.url));
    const run = (args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
        execFile(process.execPath, [cli, ...args], (error, stdout, stderr) =>
          resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        ),
      );
    const url = `http://127.0.0.1:${PORT}/__switchyard`;
    const ok = await run(["status", "--url", url, "--token", TOKEN]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(
      /^snapshot [0-9a-f]{14}, loaded \d+s ago, 1 routes\nno load error\n$/,
    );
    const refused = await run(["status", "--url", url, "--token", "wrong"]);
    expect(refused).toMatchObject({
      code: 1,
      stderr: "switchyard: the admin API refused the token (401)\n",
    });
  });
});
