// `npm run bench` (second part): Switchyard in bare `workerd serve` against a minimal
// passthrough worker in the same process, both in front of the same loopback backend, under the
// same load, in alternating rounds. Prints a Markdown table of throughput and latency ratios.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  bundle,
  WORKERD,
  type WorkerService,
  waitForPort,
  workerdConfig,
} from "../bench/bare-workerd.ts";
import { syntheticRoutes } from "../bench/fixtures.ts";
import { closedPortUrl, startBackend } from "../local/backends.ts";

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 4000);
const CONCURRENCY = 16;
const ROUNDS = 2;

interface Scenario extends WorkerService {
  entry: "switchyard.js" | "passthrough.js";
}

interface Figures {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

async function load(port: number, host: string): Promise<Figures> {
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const latencies: number[] = [];
  let errors = 0;
  let issued = 0;
  const started = performance.now();
  const worker = async () => {
    while (issued < REQUESTS) {
      issued++;
      const t0 = performance.now();
      const status = await new Promise<number>((resolve) => {
        const req = request(
          { host: "127.0.0.1", port, path: "/bench", agent, headers: { host } },
          (res) => {
            res.resume();
            res.on("end", () => resolve(res.statusCode ?? 0));
          },
        );
        req.on("error", () => resolve(0));
        req.end();
      });
      latencies.push(performance.now() - t0);
      if (status !== 200) errors++;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const seconds = (performance.now() - started) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] as number;
  return { rps: REQUESTS / seconds, p50: at(0.5), p99: at(0.99), errors };
}

async function main(): Promise<void> {
  const backend = await startBackend("bench");
  const closed = await closedPortUrl();
  const dir = await mkdtemp(join(tmpdir(), "switchyard-bench-"));
  let workerd: ChildProcess | undefined;
  try {
    await bundle("bench/workerd/switchyard-entry.ts", join(dir, "switchyard.js"));
    await bundle("bench/workerd/passthrough-entry.ts", join(dir, "passthrough.js"));
    const oneRoute = {
      routes: JSON.stringify({
        version: 1,
        routes: [{ name: "bench", rules: [{ backendRefs: [{ pool: "p" }] }] }],
        pools: { p: { endpoints: [{ url: backend.url }] } },
      }),
    };
    const big = syntheticRoutes(10_000, 1);
    const bigRoutes = {
      routes: JSON.stringify({
        ...big,
        pools: { "pool-0": { endpoints: [{ url: backend.url }] } },
      }),
    };
    const retry = {
      routes: JSON.stringify({
        version: 1,
        routes: [
          { name: "bench", rules: [{ backendRefs: [{ pool: "p" }], retry: { attempts: 1 } }] },
        ],
        pools: { p: { endpoints: [{ url: closed }, { url: backend.url }] } },
      }),
    };
    const base = 18_700 + Math.floor(Math.random() * 500);
    const scenarios: (Scenario & { label: string; host: string })[] = [
      {
        label: "passthrough worker",
        name: "passthrough",
        port: base,
        entry: "passthrough.js",
        bindings: { BACKEND: backend.url },
        host: "x.test",
      },
      {
        label: "Switchyard, 1 route",
        name: "one",
        port: base + 1,
        entry: "switchyard.js",
        bindings: { KV_JSON: JSON.stringify(oneRoute) },
        host: "x.test",
      },
      {
        label: "Switchyard, 10,000 routes",
        name: "big",
        port: base + 2,
        entry: "switchyard.js",
        bindings: { KV_JSON: JSON.stringify(bigRoutes) },
        host: "svc-4242.example.com",
      },
      {
        label: "Switchyard, every request retried once (refused, then ok)",
        name: "retry",
        port: base + 3,
        entry: "switchyard.js",
        bindings: { KV_JSON: JSON.stringify(retry), NO_EJECT: "true" },
        host: "x.test",
      },
    ];
    await writeFile(join(dir, "config.capnp"), workerdConfig(scenarios));
    workerd = spawn(WORKERD, ["serve", join(dir, "config.capnp"), "--experimental"], {
      stdio: ["ignore", "ignore", "inherit"],
    });
    for (const s of scenarios) await waitForPort(s.port);

    const results = new Map<string, Figures[]>();
    for (const s of scenarios) await load(s.port, s.host); // warm-up: JIT, snapshot load
    for (let round = 0; round < ROUNDS; round++) {
      for (const s of scenarios) {
        const figures = await load(s.port, s.host);
        results.set(s.label, [...(results.get(s.label) ?? []), figures]);
        process.stderr.write(
          `${s.label}: ${figures.rps.toFixed(0)} req/s, p50 ${figures.p50.toFixed(2)} ms\n`,
        );
      }
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const baseline = results.get(scenarios[0]!.label)!;
    const baseRps = mean(baseline.map((f) => f.rps));
    const baseP50 = mean(baseline.map((f) => f.p50));
    console.log(
      `\n${REQUESTS} requests a round, ${CONCURRENCY} in flight, ${ROUNDS} rounds (mean shown), keep-alive, Node backend answering JSON.\n`,
    );
    console.log("| target | req/s | ratio to passthrough | p50 ms | p99 ms | non-200 |");
    console.log("|---|---|---|---|---|---|");
    for (const s of scenarios) {
      const f = results.get(s.label)!;
      const rps = mean(f.map((x) => x.rps));
      console.log(
        `| ${s.label} | ${rps.toFixed(0)} | ${(rps / baseRps).toFixed(2)} | ${mean(f.map((x) => x.p50)).toFixed(2)} | ${mean(f.map((x) => x.p99)).toFixed(2)} | ${f.reduce((a, x) => a + x.errors, 0)} |`,
      );
    }
    const retryP50 = mean(results.get(scenarios[3]!.label)!.map((f) => f.p50));
    const oneP50 = mean(results.get(scenarios[1]!.label)!.map((f) => f.p50));
    console.log(
      `\nOne retry after a refused connection adds ${(retryP50 - oneP50).toFixed(2)} ms at p50 (passthrough p50 ${baseP50.toFixed(2)} ms).`,
    );
  } finally {
    workerd?.kill("SIGTERM");
    if (workerd) await once(workerd, "exit");
    await backend.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
