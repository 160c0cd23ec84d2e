// `npm run bench:ablation`: CPU per request of the passthrough worker, the route match and
// pick alone, the same with Switchyard's forwarded headers, and the real app, each in its own
// `workerd serve` pinned to core 0 with wrk on core 1, over one and over three endpoints.
// Medians of BENCH_ROUNDS (default 6) rounds of 4 s; CPU from /proc. docs/benchmarks.md.
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  bundle,
  cpuSeconds,
  startBenchBackends,
  WORKERD_BINARY,
  waitForPort,
  workerdConfig,
} from "../bench/bare-workerd.ts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 6);
const run = promisify(execFile);

execFileSync("sh", ["scripts/system-deps.sh", "bench"], { stdio: "inherit" });
execFileSync("taskset", ["-pc", "1", String(process.pid)], { stdio: "ignore" });
const backends = await startBenchBackends(3);
const urls = backends.map((b) => `http://127.0.0.1:${b.port}`);
const dir = await mkdtemp(join(tmpdir(), "switchyard-ablation-"));
const children: ChildProcess[] = [];
try {
  await bundle("bench/workerd/ablation-entry.ts", join(dir, "ablation.js"));
  await bundle("bench/workerd/switchyard-entry.ts", join(dir, "switchyard.js"));
  await bundle("bench/workerd/passthrough-entry.ts", join(dir, "passthrough.js"));
  const kv = (endpoints: string[]) =>
    JSON.stringify({
      routes: JSON.stringify({
        version: 1,
        routes: [
          { name: "bench", hostnames: ["x.test"], rules: [{ backendRefs: [{ pool: "p" }] }] },
        ],
        pools: { p: { endpoints: endpoints.map((url) => ({ url })) } },
      }),
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
      label: "Switchyard without the dashboard's counters; 3 endpoints",
      entry: "switchyard.js",
      bindings: { KV_JSON: kv(urls), NO_TRAFFIC: "true" },
    },
  ];
  const procs: { label: string; port: number; pid: number }[] = [];
  let port = 19_700 + Math.floor(Math.random() * 200);
  for (const [i, v] of variants.entries()) {
    const config = join(dir, `v${i}.capnp`);
    await writeFile(
      config,
      workerdConfig([{ name: `v${i}`, port, entry: v.entry, bindings: v.bindings }]),
    );
    const child = spawn("taskset", ["-c", "0", WORKERD_BINARY, "serve", config, "--experimental"], {
      stdio: "ignore",
    });
    children.push(child);
    await waitForPort(port);
    procs.push({ label: v.label, port, pid: child.pid as number });
    port++;
  }
  const wrk = (p: { port: number }, seconds: number) =>
    run("taskset", [
      "-c",
      "1",
      "wrk",
      "-t1",
      "-c32",
      `-d${seconds}s`,
      "-H",
      "Host: x.test",
      `http://127.0.0.1:${p.port}/bench`,
    ]);
  for (const p of procs) await wrk(p, 2);
  const cpu = new Map<string, number[]>();
  for (let r = 0; r < ROUNDS; r++) {
    for (const p of procs) {
      const before = await cpuSeconds(p.pid);
      const { stdout } = await wrk(p, 4);
      if (/Non-2xx/.test(stdout)) throw new Error(`${p.label} answered errors`);
      const requests = Number(/(\d+) requests in/.exec(stdout)?.[1]);
      cpu.set(p.label, [
        ...(cpu.get(p.label) ?? []),
        (((await cpuSeconds(p.pid)) - before) * 1e6) / requests,
      ]);
    }
  }
  const median = (xs: number[]) =>
    [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  console.log(`| variant | CPU µs/request, median of ${ROUNDS} | all rounds |`);
  console.log("|---|---|---|");
  for (const p of procs) {
    const xs = cpu.get(p.label) as number[];
    console.log(
      `| ${p.label} | ${median(xs).toFixed(0)} | ${xs.map((x) => x.toFixed(0)).join(" ")} |`,
    );
  }
} finally {
  for (const child of children) child.kill("SIGTERM");
  await Promise.all(
    children.map((c) =>
      c.exitCode === null && c.signalCode === null ? once(c, "exit") : undefined,
    ),
  );
  for (const b of backends) await b.close();
  await rm(dir, { recursive: true, force: true });
}
