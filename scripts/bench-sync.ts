// `npm run bench:sync`: discovery-sync at scale against the emulators, with objects as a real
// cluster serves them (bench/realistic-objects.ts): 10,000 published Services with 100,000
// endpoints, plus 20,000 Services that are not published (with their slices). Measures the
// initial publish, a forced relist after 410 Gone, resident memory through both, KV requests;
// then 1,000 endpoint changes a second for 10 s: Cloudflare API requests per minute,
// event-to-KV latency and writes per key per second.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { realisticService, realisticSlice } from "../bench/realistic-objects.ts";
import { freeLoopbackPort } from "../local/listen.ts";
import { startWorld, until } from "../test/fixtures/sync-harness.ts";

const SERVICES = Number(process.env.BENCH_SERVICES ?? 10_000);
const UNPUBLISHED = Number(process.env.BENCH_UNPUBLISHED ?? SERVICES * 2);
const ENDPOINTS_PER_SERVICE = 10;
const UNPUBLISHED_ENDPOINTS = Number(process.env.BENCH_UNPUBLISHED_ENDPOINTS ?? 10);
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

const published = (i: number) => ({ namespace: `ns-${i % 50}`, name: `svc-${i}` });
const quiet = (i: number) => ({ namespace: `ns-${i % 50}`, name: `other-${i}` });

const world = await startWorld();
const rows: string[][] = [];
let stopping = false;
try {
  const seedStart = performance.now();
  let jsonBytes = { service: 0, slice: 0 };
  for (let i = 0; i < SERVICES; i++) {
    const { namespace, name } = published(i);
    const svc = realisticService(namespace, name, i, true);
    const slice = realisticSlice(
      namespace,
      name,
      `${name}-abcde`,
      i,
      ENDPOINTS_PER_SERVICE,
      i * ENDPOINTS_PER_SERVICE,
    );
    if (i === 0)
      jsonBytes = { service: JSON.stringify(svc).length, slice: JSON.stringify(slice).length };
    world.kube.store.create("services", svc as never);
    world.kube.store.create("endpointslices", slice as never);
  }
  for (let i = 0; i < UNPUBLISHED; i++) {
    const { namespace, name } = quiet(i);
    world.kube.store.create("services", realisticService(namespace, name, i, false) as never);
    world.kube.store.create(
      "endpointslices",
      realisticSlice(
        namespace,
        name,
        `${name}-fghij`,
        i,
        UNPUBLISHED_ENDPOINTS,
        200_000 + i * UNPUBLISHED_ENDPOINTS,
      ) as never,
    );
  }
  process.stderr.write(
    `seeded ${SERVICES + UNPUBLISHED} Services and their slices (${jsonBytes.service} B a Service, ${jsonBytes.slice} B a slice) in ${((performance.now() - seedStart) / 1000).toFixed(1)} s\n`,
  );

  const httpPort = await freeLoopbackPort();
  const started = Date.now();
  // Run as users and the image do: `npm run sync`, with the V8 memory flags of its script.
  const child = spawn("npm", ["run", "--silent", "sync", "--", "--http-port", String(httpPort)], {
    cwd: ROOT,
    env: world.env({
      LOG_LEVEL: "warn",
      POD_NAME: "bench",
      ...(process.env.SYNC_HEAP_MB ? { SYNC_HEAP_MB: process.env.SYNC_HEAP_MB } : {}),
      // e.g. "--heapsnapshot-near-heap-limit=1 --diagnostic-dir=/tmp": where the heap goes.
      ...(process.env.SYNC_NODE_OPTIONS ? { NODE_OPTIONS: process.env.SYNC_NODE_OPTIONS } : {}),
    }),
    stdio: ["ignore", "ignore", "inherit"],
  });
  let peak = 0;
  let pid: number | undefined;
  child.once("exit", (code) => {
    if (!stopping) {
      process.stderr.write(`npm run sync exited early (${code})\n`);
      process.exit(1);
    }
  });
  const sampler = setInterval(() => {
    pid ??= syncPid(child.pid as number);
    if (pid !== undefined) peak = Math.max(peak, rssMiB(pid).rss);
  }, 100);
  const doneAt = await until(() => world.entries.size >= SERVICES, "the initial publish", 120_000);
  const publishPeak = peak;

  const bulkPuts = world.kv.requests.filter(
    (r) => r.startsWith("PUT") && r.endsWith("/bulk"),
  ).length;
  const allRequests = world.kv.requests.length;
  rows.push([
    `initial publish of ${SERVICES.toLocaleString("en")} pools (${(SERVICES * ENDPOINTS_PER_SERVICE).toLocaleString("en")} endpoints)`,
    `${((doneAt - started) / 1000).toFixed(2)} s`,
    "≤ 10 s",
  ]);
  rows.push([
    "KV requests for it",
    `${allRequests} (${bulkPuts} bulk write${bulkPuts === 1 ? "" : "s"}, ${allRequests - bulkPuts} key listing)`,
    "≈ pools ÷ 10,000 bulk calls",
  ]);

  // A forced relist: the history is compacted and the watches cut, as when the API server
  // restarts; resuming gets 410 Gone and every cache lists again.
  const readyz = async () =>
    (await fetch(`http://127.0.0.1:${httpPort}/readyz`).catch(() => undefined))?.status;
  await until(async () => (await readyz()) === 200, "readiness", 30_000);
  const listsBefore = world.kube.requests.filter((r) => r.includes("limit=")).length;
  const relistStart = Date.now();
  world.kube.store.compact();
  world.kube.dropWatches();
  await until(
    () => world.kube.requests.filter((r) => r.includes("limit=")).length > listsBefore,
    "the relist to start",
    30_000,
  );
  const relistDone = await until(async () => (await readyz()) === 200, "the relist", 60_000);
  rows.push([
    "relist after 410 Gone, until ready again",
    `${((relistDone - relistStart) / 1000).toFixed(2)} s`,
    "",
  ]);

  // 1,000 endpoint changes a second: each replaces one endpoint of a random Service's slice.
  const changes: { key: string; at: number }[] = [];
  const firstWrite = world.kv.writes.length;
  const requestsBefore = world.kv.requests.length;
  const churnStart = Date.now();
  let seq = 0;
  const changeEnd = Date.now() + CHANGE_SECONDS * 1000;
  while (Date.now() < changeEnd) {
    const tickStart = Date.now();
    for (let k = 0; k < CHANGES_PER_SECOND / 10; k++) {
      const i = Math.floor(Math.random() * SERVICES);
      const { namespace, name } = published(i);
      const base = realisticSlice(
        namespace,
        name,
        `${name}-abcde`,
        i,
        ENDPOINTS_PER_SERVICE,
        i * ENDPOINTS_PER_SERVICE,
      );
      seq++;
      (base.endpoints[0] as { addresses: string[] }).addresses = [
        `10.200.${Math.floor(seq / 250) % 250}.${(seq % 250) + 1}`,
      ];
      world.kube.store.apply("endpointslices", base as never);
      changes.push({ key: `pool:${namespace}/${name}:http`, at: Date.now() });
    }
    const wait = 100 - (Date.now() - tickStart);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  // Give the last changes their 1.5 s, then measure.
  await new Promise((r) => setTimeout(r, 3_000));
  const churnMinutes = (Date.now() - churnStart) / 60_000;
  const churnRequests = world.kv.requests.length - requestsBefore;
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
  rows.push([
    "peak resident memory, initial publish",
    `${publishPeak.toFixed(0)} MiB`,
    "≤ 300 MiB",
  ]);
  rows.push([
    "peak resident memory, whole run (relist and churn included)",
    `${peak.toFixed(0)} MiB`,
    "≤ 300 MiB",
  ]);
  rows.push([
    `changes applied (${CHANGES_PER_SECOND}/s for ${CHANGE_SECONDS} s)`,
    `${changes.length}, ${writes.length} key writes`,
    "",
  ]);
  rows.push([
    "Cloudflare API requests during the churn",
    `${churnRequests} in ${(churnMinutes * 60).toFixed(1)} s = ${(churnRequests / churnMinutes).toFixed(0)} a minute`,
    "≤ 120 a minute",
  ]);
  rows.push([
    "event-to-KV latency p50 / p99 / max",
    `${quantile(latencies, 0.5)} / ${quantile(latencies, 0.99)} / ${Math.max(...latencies)} ms`,
    "p99 ≤ 1,500 ms",
  ]);
  rows.push(["changes never published", String(unpublished), "0"]);
  rows.push(["writes of one key less than 1 s apart", String(tooOften), "0"]);
  rows.push(["answers 429 from the KV API", String(world.kv.rateLimited()), "0"]);
  stopping = true;
  child.kill("SIGTERM");
  await new Promise((r) => child.once("exit", r));
} finally {
  await world.close();
}
console.log(
  `Node ${process.version}; ${SERVICES} published Services × ${ENDPOINTS_PER_SERVICE} endpoints, ${UNPUBLISHED} others × ${UNPUBLISHED_ENDPOINTS}\n`,
);
console.log("| measure | result | target |");
console.log("|---|---|---|");
for (const row of rows) console.log(`| ${row.join(" | ")} |`);
