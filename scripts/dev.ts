// `npm start`: the local stack. Three demo backends on loopback, the demo routes seeded into
// local persisted KV (only when KV has no routes yet), and the worker under wrangler dev.
// Ctrl-C stops everything it started.
import { readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Backend, startBackend } from "../test/fixtures/backends.ts";
import { ROOT, spawnWrangler, wrangler } from "./wrangler.ts";

const PORT = Number(process.env.PORT ?? 8787);
const PERSIST = ".wrangler/state";
const DEMO_PORTS = [9101, 9102, 9103];
const KV = ["--local", "--binding", "SWITCHYARD", "--persist-to", PERSIST];

function say(line = ""): void {
  process.stdout.write(`${line}\n`);
}

async function startBackends(): Promise<Backend[]> {
  try {
    return await Promise.all(
      ["web-1", "web-canary", "api"].map((name, i) => startBackend(name, { port: DEMO_PORTS[i] })),
    );
  } catch (error) {
    throw new Error(
      `cannot start the demo backends on ports ${DEMO_PORTS.join(", ")}: ${(error as Error).message}`,
    );
  }
}

async function seedKv(): Promise<void> {
  const keys = JSON.parse(await wrangler(["kv", "key", "list", ...KV])) as { name: string }[];
  if (keys.some((key) => key.name === "routes")) {
    say(
      `  local KV already has a routes document (${keys.length} keys in ${PERSIST}); leaving it as it is`,
    );
    return;
  }
  const routes = await readFile(join(ROOT, "demo/routes.json"), "utf8");
  const pools = JSON.parse(await readFile(join(ROOT, "demo/pools.json"), "utf8")) as Record<
    string,
    unknown
  >;
  const entries = [
    { key: "routes", value: routes },
    ...Object.entries(pools).map(([name, doc]) => ({
      key: `pool:${name}`,
      value: JSON.stringify(doc),
    })),
  ];
  const file = join(tmpdir(), `switchyard-seed-${process.pid}.json`);
  await writeFile(file, JSON.stringify(entries));
  await wrangler(["kv", "bulk", "put", file, ...KV]);
  say(`  seeded local KV with demo/routes.json and ${entries.length - 1} pool documents`);
}

async function main(): Promise<void> {
  say("Switchyard local stack");
  const backends = await startBackends();
  say(`  demo backends: ${backends.map((b) => `${b.name} ${b.url}`).join(", ")}`);
  await seedKv();

  const dev = spawnWrangler([
    "dev",
    "--local",
    "--persist-to",
    PERSIST,
    "--ip",
    "127.0.0.1",
    "--port",
    String(PORT),
    "--var",
    "SWITCHYARD_LOCAL:true",
    "--var",
    "CONFIG_REFRESH_SECONDS:2",
    "--var",
    "STICKY_SECRET:local-development-only",
  ]);
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    dev.kill("SIGTERM");
    await Promise.all(backends.map((b) => b.close()));
    process.exit(code);
  };
  process.on("SIGINT", () => void stop(0));
  process.on("SIGTERM", () => void stop(0));
  dev.on("exit", (code) => {
    if (!stopping) {
      say(`wrangler dev exited (${code}); stopping`);
      void stop(1);
    }
  });
  dev.stderr?.pipe(process.stderr);

  let ready = false;
  dev.stdout?.setEncoding("utf8");
  dev.stdout?.on("data", (chunk: string) => {
    if (!ready && chunk.includes("Ready on")) {
      ready = true;
      const url = `http://127.0.0.1:${PORT}`;
      say();
      say(`Switchyard is serving on ${url}`);
      say("Try:");
      say(`  curl -H 'Host: shop.localhost' ${url}/          # 80/20 split: web-1 / web-canary`);
      say(`  curl -H 'Host: shop.localhost' ${url}/api/items # path rule: api`);
      say(`  curl -H 'Host: a.status.localhost' ${url}/     # wildcard host, weights 5,1,1`);
      say(
        `  curl -c /tmp/jar -b /tmp/jar -H 'Host: a.status.localhost' ${url}/  # sticky: same backend each time`,
      );
      say(
        'Edit routes: npx wrangler kv key put --local --binding SWITCHYARD routes "$(cat demo/routes.json)"',
      );
      say("  (changes are picked up within 2 s). Ctrl-C stops everything.");
      say();
      return;
    }
    if (ready) process.stdout.write(chunk);
  });
}

main().catch((error: Error) => {
  process.stderr.write(`npm start failed: ${error.message}\n`);
  process.exit(1);
});
