// `npm run bench:gc`: the garbage collections of a Switchyard isolate under load, as V8 reports
// them (workerd's `v8Flags`, `--trace-gc-nvp`). The worker runs in bare `workerd serve` pinned to
// core 0 with the 10,000-route document of bench:proxy (BENCH_GC_ROUTES=1 for one route, 0 for
// the passthrough worker instead of Switchyard), wrk
// (-t1 -c32) and the backends on core 1, for BENCH_SECONDS (default 6) s after a warm-up. Prints
// each kind of collection: how many, their pauses, what they promoted. docs/benchmarks.md.
import { execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  bundle,
  median,
  PROXY_CORE,
  pinToLoadCore,
  runWrk,
  startBenchBackends,
  startWorkerd,
  stopWorkerd,
  waitForPort,
  workerdConfig,
} from "../bench/bare-workerd.ts";
import { syntheticRoutes } from "../bench/fixtures.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 6);
const ROUTES = Number(process.env.BENCH_GC_ROUTES ?? 10_000);

/** One line of `--trace-gc-nvp`: `GC: {…}` with the collection's figures. */
interface GcLine {
  gc: string;
  pause: number;
  promoted: number;
  reason: string;
  end_object_size: number;
}

execFileSync("sh", ["scripts/system-deps.sh", "bench"], { stdio: "inherit" });
pinToLoadCore();
const backends = await startBenchBackends(3);
const dir = await mkdtemp(join(tmpdir(), "switchyard-gc-"));
try {
  await bundle(
    ROUTES === 0 ? "bench/workerd/passthrough-entry.ts" : "bench/workerd/switchyard-entry.ts",
    join(dir, "worker.js"),
  );
  const pool = { endpoints: backends.map((b, i) => ({ url: b.url, weight: i === 0 ? 2 : 1 })) };
  const doc =
    ROUTES <= 1
      ? {
          version: 1,
          routes: [
            {
              name: "svc-0",
              hostnames: ["svc-0.example.com"],
              rules: [{ backendRefs: [{ pool: "pool-0" }] }],
            },
          ],
        }
      : syntheticRoutes(ROUTES, 1);
  const port = 19_400 + Math.floor(Math.random() * 100);
  const config = workerdConfig(
    [
      {
        name: "gc",
        port,
        entry: "worker.js",
        bindings: {
          BACKEND: backends[0]?.url as string,
          KV_JSON: JSON.stringify({
            routes: JSON.stringify({ ...doc, pools: { "pool-0": pool } }),
          }),
        },
      },
    ],
    { v8Flags: ["--trace-gc-nvp"] },
  );
  await writeFile(join(dir, "gc.capnp"), config);
  const worker = startWorkerd(join(dir, "gc.capnp"), { core: PROXY_CORE, stdout: "pipe" });
  const lines: GcLine[] = [];
  let measuring = false;
  let pending = "";
  worker.stdout?.setEncoding("utf8");
  worker.stdout?.on("data", (chunk: string) => {
    pending += chunk;
    const complete = pending.split("\n");
    pending = complete.pop() ?? "";
    for (const line of complete) {
      const at = line.indexOf("GC: {");
      if (measuring && at !== -1) lines.push(JSON.parse(line.slice(at + 4)) as GcLine);
    }
  });
  try {
    await waitForPort(port);
    const wrk = (seconds: number) => runWrk({ port, host: "svc-0.example.com" }, seconds);
    await wrk(2);
    measuring = true;
    const stdout = await wrk(SECONDS);
    measuring = false;
    const requests = Number(/(\d+) requests in/.exec(stdout)?.[1]);
    const p99 = /^\s+99%\s+(\S+)/m.exec(stdout)?.[1];
    console.log(
      `\n${ROUTES === 0 ? "The passthrough worker" : `${ROUTES.toLocaleString("en")} route(s)`}; wrk -t1 -c32 for ${SECONDS} s: ${requests} requests, p99 ${p99}.\n`,
    );
    console.log(
      "| collection | count | pause p50 ms | pause max ms | promoted MB | live heap after, MB |",
    );
    console.log("|---|---|---|---|---|---|");
    for (const [kind, label] of [
      ["s", "scavenge (young generation)"],
      ["mc", "mark-compact (whole heap)"],
    ] as const) {
      const of = lines.filter((l) => l.gc === kind);
      if (of.length === 0) {
        console.log(`| ${label} | 0 | – | – | – | – |`);
        continue;
      }
      const promoted = of.reduce((n, l) => n + l.promoted, 0) / 2 ** 20;
      console.log(
        `| ${label} | ${of.length} | ${median(of.map((l) => l.pause)).toFixed(1)} | ${Math.max(...of.map((l) => l.pause)).toFixed(1)} | ${promoted.toFixed(1)} | ${(Math.max(...of.map((l) => l.end_object_size)) / 2 ** 20).toFixed(1)} |`,
      );
    }
    console.log(
      `\nPromoted per request: ${(lines.reduce((n, l) => n + (l.gc === "s" ? l.promoted : 0), 0) / requests) | 0} bytes.`,
    );
  } finally {
    await stopWorkerd(worker);
  }
} finally {
  for (const b of backends) await b.close();
  await rm(dir, { recursive: true, force: true });
}
