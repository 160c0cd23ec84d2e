// `npm start`: the whole loop on loopback (docs/architecture.md). Demo backends; a Kubernetes API emulator
// with two demo Services; discovery-sync publishing their pools through a local KV REST endpoint
// into the Miniflare KV that the worker reads; the worker under wrangler dev; a scripted
// scale-up and scale-down. The routes document is seeded only when local KV has none.
// Ctrl-C stops everything it started.
import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { kvNamespaceId, OFFLINE_ENV, ROOT, spawnWranglerDev } from "../cli/wrangler.ts";
import { BACKENDS, DEMO_PORT, service, slice } from "../demo/cluster.ts";
import { type Backend, startBackend } from "../local/backends.ts";
import { startKubeApi, writeKubeconfig } from "../local/emulators/kube-api.ts";
import { clientEnv, startKvRest } from "../local/emulators/kv-rest.ts";
import { miniflareKv } from "../local/emulators/miniflare-kv.ts";

const PORT = Number(process.env.PORT ?? 8787);
const KUBE_PORT = Number(process.env.KUBE_PORT ?? 18443);
const KV_PORT = Number(process.env.KV_PORT ?? 18788);
const PERSIST = process.env.SWITCHYARD_STATE_DIR ?? join(ROOT, ".wrangler/state");
const ADMIN_TOKEN = "local-admin-token-for-npm-start-only";

function say(line = ""): void {
  process.stdout.write(`${line}\n`);
}

async function main(): Promise<void> {
  say("Switchyard local stack");
  const stops: (() => Promise<unknown> | unknown)[] = [];
  const children: ChildProcess[] = [];
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    for (const child of children) child.kill("SIGTERM");
    await Promise.all(
      children.map((c) =>
        c.exitCode === null ? new Promise((r) => c.once("exit", r)) : undefined,
      ),
    );
    for (const fn of stops.reverse()) await fn();
    process.exit(code);
  };
  process.on("SIGINT", () => void stop(0));
  process.on("SIGTERM", () => void stop(0));

  let backends: Backend[];
  try {
    backends = await Promise.all(
      BACKENDS.map((b) => startBackend(b.name, { host: b.host, port: DEMO_PORT })),
    );
  } catch (error) {
    throw new Error(
      `cannot start the demo backends on 127.0.0.2–6:${DEMO_PORT}: ${(error as Error).message}`,
    );
  }
  stops.push(() => Promise.all(backends.map((b) => b.close())));
  say(`  demo backends: ${backends.map((b) => `${b.name} ${b.url}`).join(", ")}`);

  const kube = await startKubeApi({ port: KUBE_PORT });
  stops.push(() => kube.close());
  kube.store.create("services", service("web") as never);
  kube.store.create("endpointslices", slice("web", ["127.0.0.2", "127.0.0.3"]) as never);
  kube.store.create("services", service("web-canary") as never);
  kube.store.create("endpointslices", slice("web-canary", ["127.0.0.5"]) as never);
  say(`  Kubernetes API emulator: ${kube.url} (Services demo/web, demo/web-canary)`);

  const backend = await miniflareKv(PERSIST, await kvNamespaceId());
  stops.push(() => backend.dispose());
  const kv = await startKvRest({ port: KV_PORT, backend });
  stops.push(() => kv.close());
  if (!(await backend.get("routes"))) {
    await backend.put("routes", {
      value: await readFile(join(ROOT, "demo/routes.json"), "utf8"),
      metadata: null,
    });
    say("  seeded local KV with demo/routes.json");
  } else
    say(
      "  local KV already has a routes document; leaving it as it is (rm -rf .wrangler/state to start over)",
    );
  say(`  KV REST endpoint: ${kv.baseUrl}`);

  const dir = await mkdtemp(join(tmpdir(), "switchyard-dev-"));
  stops.push(() => rm(dir, { recursive: true, force: true }));
  const kubeconfig = join(dir, "kubeconfig");
  await writeKubeconfig(kubeconfig, kube.url);

  const sync = spawn(process.execPath, [join(ROOT, "discovery-sync/main.ts"), "--http-port", "0"], {
    cwd: ROOT,
    env: {
      ...OFFLINE_ENV,
      KUBECONFIG: kubeconfig,
      ...clientEnv(kv),
      POD_NAME: "discovery-sync-local",
      LOG_LEVEL: "warn",
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  children.push(sync);
  say("  discovery-sync: watching the emulator, publishing into local KV");

  const dev = spawnWranglerDev({
    port: PORT,
    persistTo: PERSIST,
    vars: { CONFIG_REFRESH_SECONDS: "2", STICKY_SECRET: "local-development-only", ADMIN_TOKEN },
  });
  children.push(dev);
  for (const child of [sync, dev]) {
    child.on("exit", (code) => {
      if (!stopping) {
        say(`${child === dev ? "wrangler dev" : "discovery-sync"} exited (${code}); stopping`);
        void stop(1);
      }
    });
  }
  dev.stderr?.pipe(process.stderr);
  dev.stdout?.setEncoding("utf8");
  let ready = false;
  dev.stdout?.on("data", (chunk: string) => {
    if (ready || !chunk.includes("Ready on")) return;
    ready = true;
    const url = `http://127.0.0.1:${PORT}`;
    const k = `kubectl --server ${kube.url}`;
    say();
    say(`Switchyard is serving on ${url}`);
    say("Try:");
    say(
      `  curl -H 'Host: shop.localhost' ${url}/          # demo/web (80) and demo/web-canary (20), published by discovery-sync`,
    );
    say(`  curl -H 'Host: shop.localhost' ${url}/api/items # path rule: api`);
    say(`  curl -H 'Host: a.status.localhost' ${url}/     # wildcard host, weights 5,1,1`);
    say(
      `  curl -c /tmp/jar -b /tmp/jar -H 'Host: a.status.localhost' ${url}/  # sticky: same backend each time`,
    );
    say(`Dashboard: ${url}/__switchyard/  (token ${ADMIN_TOKEN})`);
    say(`Explain:   npx switchyard explain --local --host shop.localhost --path /`);
    say(`Pools:     npx switchyard pools --local`);
    say(`Cluster:   ${k} get endpointslices -n demo`);
    say(
      "In 20 s demo/web scales up to 3 endpoints, at 50 s web-1 starts draining, at 60 s it is gone:",
    );
    say(
      `  watch the "backend" field of the first curl, or the dashboard. Ctrl-C stops everything.`,
    );
    say();
    const timeline: [number, () => void, string][] = [
      [
        20_000,
        () =>
          kube.store.apply(
            "endpointslices",
            slice("web", ["127.0.0.2", "127.0.0.3", "127.0.0.4"]) as never,
          ),
        "demo/web scaled up: web-3 (127.0.0.4) is ready",
      ],
      [
        50_000,
        () =>
          kube.store.apply(
            "endpointslices",
            slice("web", ["127.0.0.3", "127.0.0.4"], ["127.0.0.2"]) as never,
          ),
        "demo/web scaling down: web-1 is terminating, published as draining (sticky sessions only)",
      ],
      [
        60_000,
        () => kube.store.apply("endpointslices", slice("web", ["127.0.0.3", "127.0.0.4"]) as never),
        "demo/web scaled down: web-1 is gone",
      ],
    ];
    for (const [at, change, message] of timeline) {
      setTimeout(() => {
        if (stopping) return;
        change();
        say(`[${at / 1000}s] ${message}`);
      }, at).unref();
    }
  });
  dev.stdout?.on("data", (chunk: string) => {
    if (ready && !chunk.includes("Ready on")) process.stdout.write(chunk);
  });
}

main().catch((error: Error) => {
  process.stderr.write(`npm start failed: ${error.message}\n`);
  process.exit(1);
});
