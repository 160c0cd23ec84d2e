// `npm run bench:ablation`: CPU per request of the passthrough worker, the route match and
// pick alone, the same with Switchyard's forwarded headers, and the real app, each in its own
// `workerd serve` pinned to core 0 with wrk on core 1, over one and over three endpoints.
// Medians of BENCH_ROUNDS (default 6) rounds of 4 s; CPU from /proc. docs/benchmarks.md.
import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  bundle,
  measureCpu,
  median,
  pinToLoadCore,
  startBenchBackends,
} from "../bench/bare-workerd.ts";
import { oneRouteDocument } from "../bench/fixtures.ts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 6);

execFileSync("sh", ["scripts/system-deps.sh", "bench"], { stdio: "inherit" });
pinToLoadCore();
const backends = await startBenchBackends(3);
const urls = backends.map((b) => `http://127.0.0.1:${b.port}`);
const dir = await mkdtemp(join(tmpdir(), "switchyard-ablation-"));
try {
  await bundle("bench/workerd/ablation-entry.ts", join(dir, "ablation.js"));
  await bundle("bench/workerd/switchyard-entry.ts", join(dir, "switchyard.js"));
  await bundle("bench/workerd/passthrough-entry.ts", join(dir, "passthrough.js"));
  const kv = (endpoints: string[], rule: Record<string, unknown> = {}) =>
    JSON.stringify({
      routes: JSON.stringify(
        oneRouteDocument({ endpoints: endpoints.map((url) => ({ url })) }, rule),
      ),
    });
  const variants: { label: string; entry: string; bindings: Record<string, string> }[] = [
    {
      label: "passthrough (one backend)",
      entry: "passthrough.js",
      bindings: { BACKEND: urls[0] as string },
    },
    {
      label: "match + pick, fetch(target, request); 1 endpoint",
      entry: "ablation.js",
      bindings: { KV_JSON: kv(urls.slice(0, 1)), MODE: "route" },
    },
    {
      label: "match + pick, fetch(target, request); 3 endpoints",
      entry: "ablation.js",
      bindings: { KV_JSON: kv(urls), MODE: "route" },
    },
    {
      label: "… and Switchyard's forwarded headers; 3 endpoints",
      entry: "ablation.js",
      bindings: { KV_JSON: kv(urls), MODE: "headers" },
    },
    {
      label: "Switchyard; 1 endpoint",
      entry: "switchyard.js",
      bindings: { KV_JSON: kv(urls.slice(0, 1)) },
    },
    { label: "Switchyard; 3 endpoints", entry: "switchyard.js", bindings: { KV_JSON: kv(urls) } },
    {
      // Its body goes through a pipe that the timeout can end (docs/decisions/0003).
      label: "Switchyard, a rule with timeouts.backendRequest; 3 endpoints",
      entry: "switchyard.js",
      bindings: { KV_JSON: kv(urls, { timeouts: { backendRequest: "10s" } }) },
    },
    {
      label: "Switchyard without the dashboard's counters; 3 endpoints",
      entry: "switchyard.js",
      bindings: { KV_JSON: kv(urls), NO_TRAFFIC: "true" },
    },
  ];
  const figures = await measureCpu(dir, variants, {
    rounds: ROUNDS,
    seconds: 4,
    firstPort: 19_700 + Math.floor(Math.random() * 200),
  });
  console.log(`| variant | CPU µs/request, median of ${ROUNDS} | all rounds |`);
  console.log("|---|---|---|");
  for (const f of figures) {
    console.log(
      `| ${f.label} | ${median(f.cpu).toFixed(0)} | ${f.cpu.map((x) => x.toFixed(0)).join(" ")} |`,
    );
  }
} finally {
  for (const b of backends) await b.close();
  await rm(dir, { recursive: true, force: true });
}
