// `npm run bench:twins`: how far apart identical workers land when each runs in a process of its
// own, as every target of bench:proxy does. BENCH_TWINS (default 3) processes of the passthrough
// worker and as many of Switchyard with one route, each `workerd serve` pinned to core 0 with
// wrk on core 1, rounds alternating over all of them (BENCH_ROUNDS, default 5, of 4 s); CPU per
// request from /proc. Prints each process's median and rounds, and the range of the CPU ratio
// Switchyard ÷ passthrough over every pair of processes: what one run of bench:proxy, which
// measures one process of each, can land anywhere in. About two minutes. docs/benchmarks.md.
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

const TWINS = Number(process.env.BENCH_TWINS ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

execFileSync("sh", ["scripts/system-deps.sh", "bench"], { stdio: "inherit" });
pinToLoadCore();
const backends = await startBenchBackends(1);
const url = backends[0]?.url as string;
const dir = await mkdtemp(join(tmpdir(), "switchyard-twins-"));
try {
  await bundle("bench/workerd/switchyard-entry.ts", join(dir, "switchyard.js"));
  await bundle("bench/workerd/passthrough-entry.ts", join(dir, "passthrough.js"));
  const kv = JSON.stringify({
    routes: JSON.stringify(oneRouteDocument({ endpoints: [{ url }] })),
  });
  const twins = (label: string, entry: string, bindings: Record<string, string>) =>
    Array.from({ length: TWINS }, (_, i) => ({ label: `${label} #${i + 1}`, entry, bindings }));
  const figures = await measureCpu(
    dir,
    [
      ...twins("passthrough", "passthrough.js", { BACKEND: url }),
      ...twins("Switchyard, 1 route", "switchyard.js", { KV_JSON: kv }),
    ],
    { rounds: ROUNDS, seconds: 4, firstPort: 19_500 + Math.floor(Math.random() * 200) },
  );
  console.log(`| process | CPU µs/request, median of ${ROUNDS} | all rounds |`);
  console.log("|---|---|---|");
  for (const f of figures) {
    console.log(
      `| ${f.label} | ${median(f.cpu).toFixed(1)} | ${f.cpu.map((x) => x.toFixed(0)).join(" ")} |`,
    );
  }
  const medians = figures.map((f) => median(f.cpu));
  const passthrough = medians.slice(0, TWINS);
  const switchyard = medians.slice(TWINS);
  const spread = (xs: number[]) => (Math.max(...xs) / Math.min(...xs) - 1) * 100;
  const ratios = switchyard.flatMap((s) => passthrough.map((p) => s / p));
  console.log(
    `\nSpread of the medians between identical processes: passthrough ${spread(passthrough).toFixed(1)} %, Switchyard ${spread(switchyard).toFixed(1)} %.`,
  );
  console.log(
    `CPU ratio Switchyard ÷ passthrough over the ${ratios.length} pairs of processes: ${Math.min(...ratios).toFixed(2)} to ${Math.max(...ratios).toFixed(2)} (median ${median(ratios).toFixed(2)}).`,
  );
} finally {
  for (const b of backends) await b.close();
  await rm(dir, { recursive: true, force: true });
}
