// `npm run bench:compare`: did a change make the data path cheaper? Switchyard's worker at
// BENCH_BASELINE (a commit, default HEAD~1) against the worker in the working tree, both behind
// today's bench entry, with one route over three endpoints, next to the passthrough worker. Each
// worker runs twice, as two `workerd serve` processes pinned to core 0 (wrk and the backends on
// core 1): the two copies of one worker measure the noise of the method itself. Rounds alternate
// all five; figures are medians of differences and ratios taken round by round. Medians of
// BENCH_ROUNDS (default 16) rounds of BENCH_SECONDS (default 2) s. BENCH_SCENARIO=sticky
// measures a rule with sessionPersistence and its cookie sent instead. docs/benchmarks.md.
import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  BENCH_PERSISTENCE,
  BENCH_STICKY_SECRET,
  benchStickyCookie,
  bundle,
  bundleAtCommit,
  type CpuFigures,
  measureCpu,
  median,
  pinToLoadCore,
  startBenchBackends,
} from "../bench/bare-workerd.ts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 16);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const BASELINE = process.env.BENCH_BASELINE ?? "HEAD~1";
const ENTRY = "bench/workerd/switchyard-entry.ts";
const SCENARIO = process.env.BENCH_SCENARIO ?? "one-route";
if (SCENARIO !== "one-route" && SCENARIO !== "sticky")
  throw new Error(`BENCH_SCENARIO must be one-route or sticky, not ${SCENARIO}`);

execFileSync("sh", ["scripts/system-deps.sh", "bench"], { stdio: "inherit" });
pinToLoadCore();
const backends = await startBenchBackends(3);
const dir = await mkdtemp(join(tmpdir(), "switchyard-compare-"));
try {
  await bundle(ENTRY, join(dir, "current.js"));
  await bundleAtCommit(BASELINE, ENTRY, join(dir, "baseline.js"), { currentEntry: true });
  await bundle("bench/workerd/passthrough-entry.ts", join(dir, "passthrough.js"));
  const urls = backends.map((b) => b.url);
  const sticky = SCENARIO === "sticky";
  const rule = sticky
    ? { name: "web", backendRefs: [{ pool: "p" }], sessionPersistence: BENCH_PERSISTENCE }
    : { backendRefs: [{ pool: "p" }] };
  const bindings = {
    BACKEND: urls[0] as string,
    ...(sticky ? { STICKY_SECRET: BENCH_STICKY_SECRET } : {}),
    KV_JSON: JSON.stringify({
      routes: JSON.stringify({
        version: 1,
        routes: [{ name: "bench", hostnames: ["x.test"], rules: [rule] }],
        pools: { p: { endpoints: urls.map((url) => ({ url })) } },
      }),
    }),
  };
  const headers = sticky ? { Cookie: await benchStickyCookie(urls[1] as string) } : undefined;
  const [pass, base, current, base2, current2] = (await measureCpu(
    dir,
    [
      { label: "passthrough", entry: "passthrough.js", bindings, headers },
      { label: `baseline (${BASELINE})`, entry: "baseline.js", bindings, headers },
      { label: "working tree", entry: "current.js", bindings, headers },
      { label: `baseline (${BASELINE}), second copy`, entry: "baseline.js", bindings, headers },
      { label: "working tree, second copy", entry: "current.js", bindings, headers },
    ],
    { rounds: ROUNDS, seconds: SECONDS, firstPort: 19_500 + Math.floor(Math.random() * 200) },
  )) as [CpuFigures, CpuFigures, CpuFigures, CpuFigures, CpuFigures];
  const paired = (a: CpuFigures, b: CpuFigures, f: (x: number, y: number) => number) =>
    median(a.cpu.map((x, i) => f(x, b.cpu[i] as number)));
  const throughput = (a: CpuFigures) =>
    median(a.rps.map((x, i) => x / (pass.rps[i] as number))).toFixed(3);
  console.log(
    `\n${ROUNDS} rounds of ${SECONDS} s; one route over three endpoints${sticky ? ", sessionPersistence, its cookie sent" : ""}.\n`,
  );
  console.log("| worker | CPU µs/request | CPU × passthrough | req/s × passthrough |");
  console.log("|---|---|---|---|");
  for (const f of [pass, base, current, base2, current2])
    console.log(
      `| ${f.label} | ${median(f.cpu).toFixed(1)} | ${paired(f, pass, (x, y) => x / y).toFixed(3)} | ${throughput(f)} |`,
    );
  const delta = (a: CpuFigures, b: CpuFigures) => paired(a, b, (x, y) => x - y).toFixed(1);
  console.log(
    `\nWorking tree − baseline, µs of CPU a request: ${delta(current, base)} and ${delta(current2, base2)} (each copy against its twin).`,
  );
  console.log(
    `The method's own noise, a copy − its twin: baseline ${delta(base2, base)}, working tree ${delta(current2, current)}.`,
  );
} finally {
  for (const b of backends) await b.close();
  await rm(dir, { recursive: true, force: true });
}
