// `npm run bench`: figures for the worker's pure core (route match, pick, snapshot compile and
// heap). Run with --expose-gc for the heap figure. Prints a Markdown table.
import { execFile } from "node:child_process";
import { cpus, totalmem } from "node:os";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { compiledKv } from "../bench/bare-workerd.ts";
import { syntheticPool, syntheticRoutes } from "../bench/fixtures.ts";
import {
  type CompiledMetadata,
  compiledHeadKey,
  compileRoutes,
  parsePoolText,
} from "../contract/index.ts";
import { memoryKv } from "../worker/config/memory-kv.ts";
import { ConfigStore } from "../worker/config/store.ts";
import { type CompiledPoolDocument, compilePoolDocument } from "../worker/core/compiled-pool.ts";
import { compileMatcher } from "../worker/core/match.ts";
import { pick } from "../worker/core/pick.ts";
import { type RequestView, requestView } from "../worker/core/request.ts";
import { compileSnapshot, type Snapshot } from "../worker/core/snapshot.ts";

const gc = (globalThis as { gc?: () => void }).gc;
const rows: string[][] = [];

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

/** Median nanoseconds per call over `batches` timed batches of `size` calls. */
function perCall(batches: number, size: number, body: (i: number) => unknown): number {
  let sink = 0;
  const samples: number[] = [];
  for (let b = 0; b < batches + 3; b++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < size; i++) if (body(b * size + i)) sink++;
    const ns = Number(process.hrtime.bigint() - start) / size;
    if (b >= 3) samples.push(ns); // the first batches warm the JIT up
  }
  if (sink < 0) console.log(sink);
  return median(samples);
}

function record(what: string, value: string, target = ""): void {
  rows.push([what, value, target]);
  process.stderr.write(`${what}: ${value}\n`);
}

function requestsFor(routes: number): RequestView[] {
  const paths = ["/healthz", "/api/v2/orders/17", "/api/items", "/", "/static/app.js"];
  return Array.from({ length: 1024 }, (_, i) => {
    const n = (i * 7919) % routes;
    const host = n % 10 === 0 && i % 2 ? `a.svc-${n}.example.net` : `svc-${n}.example.com`;
    return requestView({
      host,
      path: paths[i % paths.length] as string,
      method: i % 3 ? "GET" : "POST",
      headers: i % 4 ? {} : { "x-canary": "1" },
    });
  });
}

const POOLS = 1_000;
const poolDocs = Array.from({ length: POOLS }, (_, p) => syntheticPool(p, 100));
const poolTexts = poolDocs.map((doc) => JSON.stringify(doc));
const specsOf = () =>
  new Map(poolDocs.map((doc, p) => [`pool-${p}`, compilePoolDocument(`pool-${p}`, doc, "kv")]));

for (const count of [10, 1_000, 10_000]) {
  const doc = syntheticRoutes(count, POOLS);
  const matcher = compileMatcher(doc.routes);
  const requests = requestsFor(count);
  const ns = perCall(30, 20_000, (i) => matcher.match(requests[i & 1023] as RequestView));
  record(`route match, ${count.toLocaleString("en")} routes`, `${ns.toFixed(0)} ns`);
}

const big = syntheticRoutes(10_000, POOLS);
let snapshot = compileSnapshot({ generation: "bench", routes: big, kvPools: specsOf() });
const rule = snapshot.rule(1, 3);
if (!rule) throw new Error("no rule");
record("pick (pool of 100 endpoints)", `${perCall(30, 50_000, () => pick(rule)).toFixed(0)} ns`);
const requests = requestsFor(10_000);
const matchAndPick = perCall(30, 20_000, (i) => {
  const found = snapshot.matcher.match(requests[i & 1023] as RequestView);
  const matched = found && snapshot.rule(found.routeIndex, found.ruleIndex);
  return matched && pick(matched);
});
record("match + pick, 10,000 routes", `${(matchAndPick / 1000).toFixed(2)} µs`, "≤ 2 µs");

function timed(runs: number, body: () => void): number {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    body();
    times.push(performance.now() - start);
  }
  return median(times);
}
const kvPools = specsOf();
const compileMs = timed(7, () => {
  snapshot = compileSnapshot({ generation: "bench", routes: big, kvPools });
});
record(
  "compile snapshot: 10,000 routes over 1,000 compiled pools",
  `${compileMs.toFixed(0)} ms`,
  "≤ 100 ms",
);
const specMs = timed(5, () => specsOf());
record("compile 1,000 pool documents × 100 endpoints (first load only)", `${specMs.toFixed(0)} ms`);
const coldMs = timed(3, () => {
  const parsed = poolTexts.map((text, p) => {
    const result = parsePoolText(text);
    if (!result.ok) throw new Error("invalid");
    return [`pool-${p}`, compilePoolDocument(`pool-${p}`, result.value, "kv")] as const;
  });
  compileSnapshot({ generation: "bench", routes: big, kvPools: new Map(parsed) });
});
record("cold load: parse + validate 1,000 pool texts, compile all", `${coldMs.toFixed(0)} ms`);

/**
 * A ConfigStore loaded over an in-memory KV holding the 10,000-route document and 1,000 pools,
 * with texts made fresh here, as KV hands an isolate new strings.
 */
/** A new flat string with the same text, as KV hands an isolate on every read. */
function flat(text: string): string {
  return Buffer.from(text, "latin1").toString("latin1");
}

/**
 * The store over the 10,000-route document and its 1,000 pools, as wrangler writes it (read
 * whole), or as `switchyard push` writes it (the compiled layout), then with every shard read.
 */
async function loadedStore(compiled: boolean) {
  const layout = compiled
    ? compiledKv(big)
    : { entries: { routes: JSON.stringify(big) }, metadata: {} };
  const entries = new Map<string, string>(Object.entries(layout.entries));
  for (const [p, doc] of poolDocs.entries()) entries.set(`pool:pool-${p}`, JSON.stringify(doc));
  const metadata = layout.metadata as Record<string, unknown>;
  const kv = memoryKv(
    (key) => entries.get(key) ?? null,
    (key) => metadata[key] ?? null,
  );
  const quiet = { info() {}, warn() {}, error() {} };
  const store = new ConfigStore({ kv, refreshMs: 0, now: Date.now, log: quiet, local: true });
  await store.refresh();
  if (!store.snapshot) throw new Error(`store did not load: ${store.lastError?.message}`);
  if (compiled)
    for (const route of big.routes)
      for (const host of route.hostnames) {
        const ready = await store.withShard(store.snapshot, host.replace("*.", "x."));
        if (typeof ready === "string") throw new Error(ready);
      }
  return { store, entries, metadata };
}

const COMPILED = process.argv.includes("--compiled");

if (process.argv.includes("--isolate-heap")) {
  gc?.();
  gc?.();
  // V8's heap and the strings Node keeps outside it: a text decoded from a stream (how the store
  // reads the routes key) is an external string, which heapUsed does not count.
  const used = () => process.memoryUsage().heapUsed + process.memoryUsage().external;
  const before = used();
  const { store, entries } = await loadedStore(COMPILED);
  const served = store.snapshot as Snapshot;
  for (let r = 0; r < big.routes.length; r++)
    for (let i = 0; i < 4; i++) if (!served.rule(r, i)) throw new Error(`rule ${r}/${i} missing`);
  entries.clear();
  gc?.();
  gc?.();
  process.stdout.write(`${(used() - before) / 2 ** 20}\n`);
  if (!store.snapshot) throw new Error("lost");
  process.exit(0);
}

// The isolate's refresh: what a request behind it waits for.
{
  const { store, entries } = await loadedStore(false);
  const routesText = entries.get("routes") as string;
  /**
   * CPU of one refresh and the longest the event loop was held by it (what a request queued
   * behind the refresh waits at most), medians over `runs`.
   */
  const refreshTimes = async (
    runs: number,
    before: (i: number) => void,
    refreshed: ConfigStore = store,
  ) => {
    const cpu: number[] = [];
    const stalls: number[] = [];
    for (let i = 0; i < runs; i++) {
      before(i);
      const delay = monitorEventLoopDelay({ resolution: 1 });
      delay.enable();
      const start = process.cpuUsage();
      await refreshed.refresh();
      const used = process.cpuUsage(start);
      delay.disable();
      cpu.push((used.user + used.system) / 1000);
      stalls.push(delay.max / 1e6);
    }
    return `${median(cpu).toFixed(1)} ms CPU, longest stall ${median(stalls).toFixed(0)} ms`;
  };
  const unchanged = await refreshTimes(7, () => {
    // A fresh string with the same text, as KV hands back on every read.
    for (const [key, text] of entries) entries.set(key, flat(text));
  });
  record(
    `refresh, unchanged ${(routesText.length / 2 ** 20).toFixed(1)} MB routes document and 1,000 pools`,
    unchanged,
  );
  const changed = await refreshTimes(3, (i) => {
    entries.set("routes", `${routesText.slice(0, -1)}${" ".repeat(i + 1)}}`);
  });
  record("refresh, changed routes document (parse, validate, compile)", changed);

  // The same document as `switchyard push` writes it, every shard read: a refresh reads the
  // routes key's metadata and the pools; a new layout, its head (shards when requests need them).
  const compiled = await loadedStore(true);
  record(
    "refresh, unchanged compiled layout of the same document, every shard read",
    await refreshTimes(
      7,
      () => {
        // The texts a refresh reads: the pools (the routes key's value is not read).
        for (const [key, text] of compiled.entries)
          if (key.startsWith("pool:")) compiled.entries.set(key, flat(text));
      },
      compiled.store,
    ),
  );
  const shards = (compiled.metadata.routes as CompiledMetadata).shards;
  record(
    "refresh, a new compiled layout (its head; shards are read as requests need them)",
    await refreshTimes(
      3,
      (i) => {
        const next = compileRoutes(big, `next-${i}`, shards);
        compiled.entries.set(compiledHeadKey(`next-${i}`), JSON.stringify(next.head));
        compiled.metadata.routes = next.metadata;
      },
      compiled.store,
    ),
  );
}

if (gc) {
  const heapMiB = (build: () => unknown): [number, unknown] => {
    gc();
    gc();
    const before = process.memoryUsage().heapUsed;
    const kept = build();
    gc();
    gc();
    return [(process.memoryUsage().heapUsed - before) / 2 ** 20, kept];
  };
  snapshot = undefined as unknown as Snapshot;
  const [specHeap, specs] = heapMiB(() => specsOf());
  const [snapHeap, built] = heapMiB(() =>
    compileSnapshot({
      generation: "bench",
      routes: big,
      kvPools: specs as Map<string, CompiledPoolDocument>,
    }),
  );
  snapshot = built as Snapshot;
  record("heap: 1,000 compiled pools (100,000 endpoints)", `${specHeap.toFixed(1)} MiB`);
  record("heap: snapshot of 10,000 routes", `${snapHeap.toFixed(1)} MiB`);
  record(
    "heap: pools + snapshot, as loaded",
    `${(specHeap + snapHeap).toFixed(1)} MiB`,
    "≤ 32 MiB",
  );
  const [touched] = heapMiB(() => {
    for (let r = 0; r < big.routes.length; r++) for (let i = 0; i < 4; i++) snapshot.rule(r, i);
    return snapshot;
  });
  record("heap: after every rule and pool has served", `+${touched.toFixed(1)} MiB`);
  // The isolate as it runs, measured in a fresh process: the store keeps the texts it parsed (to
  // recognise them unchanged) beside the compiled pools and the snapshot, and every rule served.
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ["--expose-gc", fileURLToPath(import.meta.url), "--isolate-heap"],
    { maxBuffer: 1 << 20 },
  );
  record(
    "heap: a store that loaded 10,000 routes and 1,000 pools (100,000 endpoints), every rule served",
    `${Number(stdout.trim()).toFixed(1)} MiB`,
    "< 64 MiB",
  );
  const layout = await promisify(execFile)(
    process.execPath,
    ["--expose-gc", fileURLToPath(import.meta.url), "--isolate-heap", "--compiled"],
    { maxBuffer: 1 << 20 },
  );
  record(
    "heap: the same from the compiled layout, every shard read, every rule served",
    `${Number(layout.stdout.trim()).toFixed(1)} MiB`,
    "< 64 MiB",
  );
} else {
  record("heap", "not measured: run with node --expose-gc");
}
if (!snapshot.rule(9_999, 3)) throw new Error("snapshot lost");

console.log(
  `Node ${process.version}, ${cpus()[0]?.model ?? "unknown CPU"} × ${cpus().length}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`,
);
console.log("");
console.log("| measure | median | target |");
console.log("|---|---|---|");
for (const [what, value, target] of rows) console.log(`| ${what} | ${value} | ${target} |`);
