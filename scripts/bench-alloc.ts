// `npm run bench:alloc`: what a request makes the isolate allocate, by function, read through
// workerd's inspector with V8's sampling heap profiler (every object sampled, whether a later
// collection frees it or not; `BENCH_ALLOC_PROMOTED=true`: only what survived the young
// generation). Switchyard with one route over three endpoints in bare `workerd serve` pinned to
// core 0, wrk (-t1 -c32) and the backends on core 1, BENCH_SECONDS (default 5) s after a
// warm-up. Prints bytes a request, in all and by function. docs/benchmarks.md.
import { execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  bundle,
  inspectorSession,
  PROXY_CORE,
  pinToLoadCore,
  runWrk,
  startBenchBackends,
  startWorkerd,
  stopWorkerd,
  waitForPort,
  workerdConfig,
} from "../bench/bare-workerd.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const PROMOTED = process.env.BENCH_ALLOC_PROMOTED === "true";
const TOP = 15;

/** A node of V8's sampling heap profile. */
interface SampleNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: SampleNode[];
}

execFileSync("sh", ["scripts/system-deps.sh", "bench"], { stdio: "inherit" });
pinToLoadCore();
const backends = await startBenchBackends(3);
const dir = await mkdtemp(join(tmpdir(), "switchyard-alloc-"));
const port = 19_300 + Math.floor(Math.random() * 100);
try {
  await bundle("bench/workerd/switchyard-entry.ts", join(dir, "switchyard.js"));
  const routes = {
    version: 1,
    routes: [{ name: "bench", hostnames: ["x.test"], rules: [{ backendRefs: [{ pool: "p" }] }] }],
    pools: { p: { endpoints: backends.map((b) => ({ url: b.url })) } },
  };
  await writeFile(
    join(dir, "alloc.capnp"),
    workerdConfig([
      {
        name: "alloc",
        port,
        entry: "switchyard.js",
        bindings: { KV_JSON: JSON.stringify({ routes: JSON.stringify(routes) }) },
      },
    ]),
  );
  const worker = startWorkerd(join(dir, "alloc.capnp"), {
    core: PROXY_CORE,
    inspectorPort: port + 100,
  });
  try {
    await waitForPort(port);
    const wrk = (seconds: number) => runWrk({ port, host: "x.test" }, seconds);
    await wrk(2);
    const cdp = await inspectorSession(`ws://127.0.0.1:${port + 100}/alloc`);
    await cdp.send("HeapProfiler.enable");
    await cdp.send("HeapProfiler.startSampling", {
      samplingInterval: 2048,
      includeObjectsCollectedByMinorGC: !PROMOTED,
      includeObjectsCollectedByMajorGC: true,
    });
    const stdout = await wrk(SECONDS);
    const { profile } = (await cdp.send("HeapProfiler.getSamplingProfile")) as {
      profile: { head: SampleNode };
    };
    await cdp.send("HeapProfiler.stopSampling");
    cdp.close();
    const requests = Number(/(\d+) requests in/.exec(stdout)?.[1]);
    const byFunction = new Map<string, number>();
    const walk = (node: SampleNode) => {
      const { functionName, url, lineNumber } = node.callFrame;
      // The bundle is one file: a function is named by its name and its line in the bundle.
      const key =
        url === "" ? functionName || "(runtime)" : `${functionName || "(anonymous)"}:${lineNumber}`;
      byFunction.set(key, (byFunction.get(key) ?? 0) + node.selfSize);
      for (const child of node.children) walk(child);
    };
    walk(profile.head);
    const total = [...byFunction.values()].reduce((n, x) => n + x, 0);
    console.log(
      `\nOne route; wrk -t1 -c32 for ${SECONDS} s: ${requests} requests. ${PROMOTED ? "Promoted (survived the young generation)" : "Allocated"}: ${(total / requests).toFixed(0)} bytes a request.\n`,
    );
    console.log("| function (line in the bundle) | bytes a request |");
    console.log("|---|---|");
    for (const [name, bytes] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, TOP))
      console.log(`| ${name} | ${(bytes / requests).toFixed(0)} |`);
  } finally {
    await stopWorkerd(worker);
  }
} finally {
  for (const b of backends) await b.close();
  await rm(dir, { recursive: true, force: true });
}
