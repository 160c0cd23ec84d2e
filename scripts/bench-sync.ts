// `npm run bench:sync`: discovery-sync at scale against the emulators. 10,000 Services with
// 100,000 endpoints: time to the initial publish, resident memory, KV requests; then 1,000
// endpoint changes a second for 10 s: event-to-KV latency and writes per key per second.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { slice, startWorld } from "../test/fixtures/sync-harness.ts";

const SERVICES = Number(process.env.BENCH_SERVICES ?? 10_000);
const ENDPOINTS_PER_SERVICE = 10;
const CHANGES_PER_SECOND = 1_000;
const CHANGE_SECONDS = 10;
const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** The pid of the node process that `npm run sync` execs: npm's child. */
function syncPid(npmPid: number): number | undefined {
  const text = readFileSync(`/proc/${npmPid}/task/${npmPid}/children`, "utf8").trim();
  return text ? Number(text.split(/\s+/)[0]) : undefined;
}

function rssMiB(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rss: kib("VmRSS") / 1024, peak: kib("VmHWM") / 1024 };
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

const world = await startWorld();
const rows: string[][] = [];
try {
  const seedStart = performance.now();
  for (let i = 0; i < SERVICES; i++) {
    const namespace = `ns-${i % 50}`;
    const name = `svc-${i}`;
    world.kube.store.create("services", {
      metadata: { name, namespace, annotations: { "switchyard.dev/publish": "true" } },
      spec: { ports: [{ name: "http", port: 80 }] },
    } as never);
    world.kube.store.create(
      "endpointslices",
      slice(
        namespace,
        name,
        `${name}-1`,
        ENDPOINTS_PER_SERVICE,
        (i * ENDPOINTS_PER_SERVICE) % 60_000,
      ) as never,
    );
  }
  process.stderr.write(
    `seeded ${SERVICES} Services in ${((performance.now() - seedStart) / 1000).toFixed(1)} s\n`,
  );

  const started = Date.now();
  // Run as users and the image do: `npm run sync`, with the V8 memory flags of its script.
  const child = spawn("npm", ["run", "--silent", "sync", "--", "--http-port", "0"], {
    cwd: ROOT,
    env: world.env({ LOG_LEVEL: "warn", POD_NAME: "bench" }),
    stdio: ["ignore", "ignore", "inherit"],
  });
  const published = new Promise<number>((resolve) => {
    const check = () =>
      world.entries.size >= SERVICES ? resolve(Date.now()) : setTimeout(check, 20);
    check();
  });
  let peak = 0;
  let pid: number | undefined;
  const sampler = setInterval(() => {
    pid ??= syncPid(child.pid as number);
    if (pid !== undefined) peak = Math.max(peak, rssMiB(pid).rss);
  }, 100);
  const doneAt = await published;
  const bulkPuts = world.kv.requests.filter(
    (r) => r.startsWith("PUT") && r.endsWith("/bulk"),
  ).length;
  const allRequests = world.kv.requests.length;
  rows.push([
    "initial publish of 10,000 pools (100,000 endpoints)",
    `${((doneAt - started) / 1000).toFixed(2)} s`,
    "≤ 10 s",
  ]);
  rows.push([
    "KV requests for it",
    `${allRequests} (${bulkPuts} bulk write${bulkPuts === 1 ? "" : "s"}, ${allRequests - bulkPuts} key listing)`,
    "≈ pools ÷ 10,000 bulk calls",
  ]);

  // 1,000 endpoint changes a second: each replaces one endpoint of a random Service's slice.
  const changes: { key: string; at: number }[] = [];
  const firstWrite = world.kv.writes.length;
  let seq = 0;
  const changeEnd = Date.now() + CHANGE_SECONDS * 1000;
  while (Date.now() < changeEnd) {
    const tickStart = Date.now();
    for (let k = 0; k < CHANGES_PER_SECOND / 10; k++) {
      const i = Math.floor(Math.random() * SERVICES);
      const namespace = `ns-${i % 50}`;
      const name = `svc-${i}`;
      const base = slice(
        namespace,
        name,
        `${name}-1`,
        ENDPOINTS_PER_SERVICE,
        (i * ENDPOINTS_PER_SERVICE) % 60_000,
      );
      seq++;
      base.endpoints[0] = {
        addresses: [`10.200.${Math.floor(seq / 250) % 250}.${(seq % 250) + 1}`],
        conditions: { ready: true },
      };
      world.kube.store.apply("endpointslices", base as never);
      changes.push({ key: `pool:${namespace}/${name}:http`, at: Date.now() });
    }
    const wait = 100 - (Date.now() - tickStart);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  // Give the last changes their 1.5 s, then measure.
  await new Promise((r) => setTimeout(r, 3_000));
  clearInterval(sampler);
  const memory = rssMiB(pid as number);
  peak = Math.max(peak, memory.peak);

  const writes = world.kv.writes.slice(firstWrite).filter((w) => w.kind === "put");
  const byKey = new Map<string, number[]>();
  for (const w of writes) byKey.set(w.key, [...(byKey.get(w.key) ?? []), w.at]);
  const latencies: number[] = [];
  let unpublished = 0;
  for (const change of changes) {
    const at = byKey.get(change.key)?.find((t) => t >= change.at);
    if (at === undefined) unpublished++;
    else latencies.push(at - change.at);
  }
  let tooOften = 0;
  for (const times of byKey.values())
    for (let j = 1; j < times.length; j++)
      if ((times[j] as number) - (times[j - 1] as number) < 1000) tooOften++;
  rows.push(["resident memory, peak", `${peak.toFixed(0)} MiB`, "≤ 300 MiB"]);
  rows.push([
    `changes applied (${CHANGES_PER_SECOND}/s for ${CHANGE_SECONDS} s)`,
    `${changes.length}, ${writes.length} key writes`,
    "",
  ]);
  rows.push([
    "event-to-KV latency p50 / p99 / max",
    `${quantile(latencies, 0.5)} / ${quantile(latencies, 0.99)} / ${Math.max(...latencies)} ms`,
    "p99 ≤ 1,500 ms",
  ]);
  rows.push(["changes never published", String(unpublished), "0"]);
  rows.push(["writes of one key less than 1 s apart", String(tooOften), "0"]);
  child.kill("SIGTERM");
  await new Promise((r) => child.once("exit", r));
} finally {
  await world.close();
}
console.log(`Node ${process.version}, ${SERVICES} Services × ${ENDPOINTS_PER_SERVICE} endpoints\n`);
console.log("| measure | result | target |");
console.log("|---|---|---|");
for (const [what, value, target] of rows) console.log(`| ${what} | ${value} | ${target} |`);
