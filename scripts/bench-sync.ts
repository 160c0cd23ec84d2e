// `npm run bench:sync`: discovery-sync at scale against the emulators, with objects as a real
// cluster serves them (bench/realistic-objects.ts, about 3.6 KB a Service and 5.2 KB a slice):
// 10,000 published Services with 100,000 endpoints, plus 20,000 Services that are not published
// with their slices of 10 endpoints, at the default heap; then 20,000 published and 40,000 others
// at the heap that size needs (BENCH_HEAP_MB_20K, default 224). For each: the initial publish and
// where its time goes (from the sync's own log), both resources relisted at once after 410 Gone,
// a relist during a publish, resident memory through all of it, KV requests; at 10,000, then
// 1,000 endpoint changes a second for 10 s: Cloudflare API requests per minute, event-to-KV
// latency and writes per key per second. BENCH_SERVICES runs one size only.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { realisticService, realisticSlice } from "../bench/realistic-objects.ts";
import { freeLoopbackPort } from "../local/listen.ts";
import { type SyncWorld, startWorld, until } from "../test/fixtures/sync-harness.ts";

const SIZES: { services: number; heapMb: string | undefined }[] = process.env.BENCH_SERVICES
  ? [{ services: Number(process.env.BENCH_SERVICES), heapMb: process.env.SYNC_HEAP_MB }]
  : [
      { services: 10_000, heapMb: undefined },
      { services: 20_000, heapMb: process.env.BENCH_HEAP_MB_20K ?? "224" },
    ];
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

/** CPU seconds a process has used, user and system. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

const published = (i: number) => ({ namespace: `ns-${i % 50}`, name: `svc-${i}` });
const quiet = (i: number) => ({ namespace: `ns-${i % 50}`, name: `other-${i}` });

/** The slice of published Service `i`, as seeded. */
function publishedSlice(i: number) {
  const { namespace, name } = published(i);
  return realisticSlice(
    namespace,
    name,
    `${name}-abcde`,
    i,
    ENDPOINTS_PER_SERVICE,
    i * ENDPOINTS_PER_SERVICE,
  );
}

/** Moves one endpoint of published Service `i` to `address`; the key of its pool. */
function moveEndpoint(world: SyncWorld, i: number, endpoint: number, address: string): string {
  const slice = publishedSlice(i);
  (slice.endpoints[endpoint] as { addresses: string[] }).addresses = [address];
  world.kube.store.apply("endpointslices", slice as never);
  const { namespace, name } = published(i);
  return `pool:${namespace}/${name}:http`;
}

/** The sync's log lines, as it writes them at LOG_LEVEL=info. */
interface LogLine {
  time: number;
  msg: string;
  resource?: string;
  ms?: number;
  recomputeMs?: number;
  planMs?: number;
  writeMs?: number;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/** One cluster size: seeds it, runs `npm run sync`, and measures. The rows of its table. */
async function measure(
  world: SyncWorld,
  SERVICES: number,
  heapMb: string | undefined,
  churn: boolean,
): Promise<string[][]> {
  const UNPUBLISHED = SERVICES * 2;
  const rows: string[][] = [];
  const seedStart = performance.now();
  let jsonBytes = { service: 0, slice: 0 };
  for (let i = 0; i < SERVICES; i++) {
    const { namespace, name } = published(i);
    const svc = realisticService(namespace, name, i, true);
    const slice = publishedSlice(i);
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
        SERVICES * ENDPOINTS_PER_SERVICE + i * UNPUBLISHED_ENDPOINTS,
      ) as never,
    );
  }
  process.stderr.write(
    `seeded ${SERVICES + UNPUBLISHED} Services and their slices (${jsonBytes.service} B a Service, ${jsonBytes.slice} B a slice) in ${((performance.now() - seedStart) / 1000).toFixed(1)} s\n`,
  );
  const heap = heapMb ?? "128";
  const label = `${SERVICES.toLocaleString("en")} published, SYNC_HEAP_MB=${heap}`;

  const httpPort = await freeLoopbackPort();
  const started = Date.now();
  // Run as users and the image do: `npm run sync`, with the V8 memory flags of its script.
  const child = spawn("npm", ["run", "--silent", "sync", "--", "--http-port", String(httpPort)], {
    cwd: ROOT,
    env: world.env({
      LOG_LEVEL: "info",
      POD_NAME: "bench",
      ...(heapMb ? { SYNC_HEAP_MB: heapMb } : {}),
      // e.g. "--heapsnapshot-near-heap-limit=1 --diagnostic-dir=/tmp": where the heap goes.
      ...(process.env.SYNC_NODE_OPTIONS ? { NODE_OPTIONS: process.env.SYNC_NODE_OPTIONS } : {}),
    }),
    stdio: ["ignore", "pipe", "inherit"],
  });
  const log: LogLine[] = [];
  let partial = "";
  child.stdout.on("data", (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      try {
        const entry = JSON.parse(line) as LogLine;
        log.push(entry);
        if (entry.msg.includes("does not fit in the heap")) process.stderr.write(`${line}\n`);
      } catch {
        // not a log line
      }
    }
  });
  let stopping = false;
  let peak = 0;
  let pid: number | undefined;
  child.once("exit", (code) => {
    if (!stopping) {
      process.stderr.write(`npm run sync exited early (${code}) at ${label}\n`);
      process.exit(1);
    }
  });
  const sampler = setInterval(() => {
    pid ??= syncPid(child.pid as number);
    if (pid !== undefined) peak = Math.max(peak, rssMiB(pid).rss);
  }, 100);
  const doneAt = await until(() => world.entries.size >= SERVICES, "the initial publish", 120_000);
  const publishPeak = peak;
  const publishCpu = pid === undefined ? Number.NaN : cpuSeconds(pid);

  const bulkPuts = world.kv.requests.filter(
    (r) => r.startsWith("PUT") && r.endsWith("/bulk"),
  ).length;
  const allRequests = world.kv.requests.length;
  rows.push([
    `initial publish of ${SERVICES.toLocaleString("en")} pools (${(SERVICES * ENDPOINTS_PER_SERVICE).toLocaleString("en")} endpoints)`,
    seconds(doneAt - started),
    SERVICES === 10_000 ? "≤ 10 s" : "",
  ]);
  // Where the time goes, from the sync's own log: start (process and modules, the Lease), the
  // two paged lists one after the other, then one pass: recompute, plan, the bulk write.
  // The sync logs its pass once the write's answer has come, just after KV holds the keys.
  await until(() => log.some((l) => l.msg === "applied"), "the publish's log line", 10_000);
  const listed = (resource: string) =>
    log.find((l) => l.msg === "listed" && l.resource === resource);
  const applied = log.find((l) => l.msg === "applied");
  const serving = log.find((l) => l.msg.startsWith("serving"));
  const services = listed("services");
  const slices = listed("endpointslices");
  if (serving && services && slices && applied)
    rows.push([
      "…of which: start / list Services / list slices / recompute / plan / write",
      [
        serving.time - started,
        services.ms ?? 0,
        slices.ms ?? 0,
        applied.recomputeMs ?? 0,
        applied.planMs ?? 0,
        applied.writeMs ?? 0,
      ]
        .map((ms) => seconds(ms))
        .join(" / "),
      "",
    ]);
  rows.push([
    "…CPU the sync used for it (the rest is the API server's, here in the benchmark's process)",
    `${publishCpu.toFixed(2)} s`,
    "",
  ]);
  rows.push([
    "KV requests for it",
    `${allRequests} (${bulkPuts} bulk write${bulkPuts === 1 ? "" : "s"}, ${allRequests - bulkPuts} key listing)`,
    "≈ pools ÷ 10,000 bulk calls",
  ]);

  // A forced relist: the history is compacted and the watches cut, as when the API server
  // restarts; resuming gets 410 Gone and both caches list again, at the same time.
  const readyz = async () =>
    (await fetch(`http://127.0.0.1:${httpPort}/readyz`).catch(() => undefined))?.status;
  const relist = async (): Promise<number> => {
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
    const relistDone = await until(async () => (await readyz()) === 200, "the relist", 120_000);
    return relistDone - relistStart;
  };
  rows.push([
    "both resources relisted after 410 Gone, until ready again",
    seconds(await relist()),
    "",
  ]);

  // A relist while a publish is in flight: 1,000 Services change, their write is held by the KV
  // API, and meanwhile both caches list again.
  world.kv.stallWrites(true);
  const writesBefore = world.kv.writes.length;
  for (let i = 0; i < 1_000; i++)
    moveEndpoint(world, i, 1, `10.250.${Math.floor(i / 250)}.${(i % 250) + 1}`);
  await world.kv.writeHeld(30_000);
  const duringPublish = relist();
  await new Promise((r) => setTimeout(r, 200));
  world.kv.stallWrites(false);
  rows.push([
    "both relisted during a publish of 1,000 pools, until ready again",
    seconds(await duringPublish),
    "",
  ]);
  await until(() => world.kv.writes.length - writesBefore >= 1_000, "the held publish", 60_000);

  if (churn) rows.push(...(await churnRows(world, SERVICES)));
  clearInterval(sampler);
  const memory = rssMiB(pid as number);
  peak = Math.max(peak, memory.peak);
  rows.push([
    "peak resident memory, initial publish",
    `${publishPeak.toFixed(0)} MiB`,
    "≤ 300 MiB",
  ]);
  rows.push([
    `peak resident memory, whole run (relists${churn ? " and churn" : ""} included)`,
    `${peak.toFixed(0)} MiB`,
    SERVICES === 10_000 ? "≤ 300 MiB" : "",
  ]);
  rows.push([
    "the heap was too small (the sync said so)",
    String(log.filter((l) => l.msg.includes("does not fit in the heap")).length),
    "0",
  ]);
  stopping = true;
  child.kill("SIGTERM");
  await new Promise((r) => child.once("exit", r));
  return rows.map((row) => [`${label}: ${row[0]}`, row[1] as string, row[2] as string]);
}

/** 1,000 endpoint changes a second for 10 s: requests, latency, writes per key. */
async function churnRows(world: SyncWorld, SERVICES: number): Promise<string[][]> {
  const rows: string[][] = [];
  const changes: { key: string; at: number }[] = [];
  const firstWrite = world.kv.writes.length;
  const requestsBefore = world.kv.requests.length;
  const churnStart = Date.now();
  let seq = 0;
  const changeEnd = Date.now() + CHANGE_SECONDS * 1000;
  while (Date.now() < changeEnd) {
    const tickStart = Date.now();
    for (let k = 0; k < CHANGES_PER_SECOND / 10; k++) {
      seq++;
      const key = moveEndpoint(
        world,
        Math.floor(Math.random() * SERVICES),
        0,
        `10.200.${Math.floor(seq / 250) % 250}.${(seq % 250) + 1}`,
      );
      changes.push({ key, at: Date.now() });
    }
    const wait = 100 - (Date.now() - tickStart);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  // Give the last changes their 1.5 s, then measure.
  await new Promise((r) => setTimeout(r, 3_000));
  const churnMinutes = (Date.now() - churnStart) / 60_000;
  const churnRequests = world.kv.requests.length - requestsBefore;
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
  return rows;
}

const rows: string[][] = [];
for (const [n, size] of SIZES.entries()) {
  const world = await startWorld();
  try {
    rows.push(...(await measure(world, size.services, size.heapMb, n === 0)));
  } finally {
    await world.close();
  }
}
console.log(
  `Node ${process.version}; published Services × ${ENDPOINTS_PER_SERVICE} endpoints, twice as many others × ${UNPUBLISHED_ENDPOINTS}\n`,
);
console.log("| measure | result | target |");
console.log("|---|---|---|");
for (const row of rows) console.log(`| ${row.join(" | ")} |`);
