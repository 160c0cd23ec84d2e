// `npm run bench:proxy`: Switchyard in bare `workerd serve` next to a minimal passthrough worker,
// nginx and HAProxy, on loopback. Each proxy runs in its own process pinned to core 0; wrk, the
// Node backends and this script share core 1. CPU per request is read from each proxy process's
// own accounting (/proc/PID/stat). Rounds alternate the targets; ratios to the passthrough are
// taken round by round and the medians reported. Writes bench-results/proxy.json and
// bench-results/proxy.svg. docs/benchmarks.md explains the method and records the figures.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import {
  BENCH_STICKY_SECRET,
  bundle,
  compiledKv,
  cpuSeconds,
  LOAD_CORE,
  PROXY_CORE,
  pinToLoadCore,
  ROOT,
  startBenchBackends,
  stopWorkerd,
  WORKERD_BINARY,
  type WorkerService,
  waitForPort,
  withoutWarmUp,
  workerdConfig,
} from "../bench/bare-workerd.ts";
import { bothLayouts, type ColdStartCase, measureColdStarts } from "../bench/cold-start.ts";
import { oneRouteDocument, syntheticRoutes } from "../bench/fixtures.ts";
import { haproxyConfig, nginxConfig, proxyChart } from "../bench/proxies.ts";
import {
  collectGarbage,
  firstAnswer,
  say,
  stickyCookie,
  type Target,
  wrk,
} from "../bench/proxy-targets.ts";
import { closedPortUrl } from "../local/backends.ts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = 32;
const SCALING_SECONDS = Number(process.env.BENCH_SCALING_SECONDS ?? 3);
/** Fresh processes per cold-start case. */
const COLD_RUNS = Number(process.env.BENCH_COLD_RUNS ?? 5);

/** The bench entry without the warm-up worker/index.ts runs while an isolate starts. */
const NO_WARM_UP_ENTRY = "switchyard-no-warm-up.js";

/** A cold-start case run without the warm-up, for comparison. */
function coldWithoutWarmUp(c: ColdStartCase): ColdStartCase {
  return {
    ...c,
    key: `${c.key}NoWarmUp`,
    label: `${c.label}, without the warm-up`,
    entry: NO_WARM_UP_ENTRY,
  };
}
/**
 * The paced runs: latency at a fixed, moderate load rather than at saturation, where a closed
 * loop of 32 connections measures mostly the queue in front of a busy core. Each of PACED
 * connections waits PACED_DELAY_MS between an answer and its next request. Each workerd target
 * runs them in a process of its own, started with its inspector, through which the isolate
 * makes a full garbage collection right before each of its paced rounds and right after it. A
 * full collection pauses an isolate for 15–130 ms whatever its worker, and falls wherever V8's
 * heap limits put it, in one round and not in the next, so that without them a round's p99 said
 * mostly whether one fell inside it. The time of the collection after a round, which frees what
 * the round's requests left, is reported next to the p99.
 */
const PACED_SECONDS = Number(process.env.BENCH_PACED_SECONDS ?? 6);
const PACED_ROUNDS = Number(process.env.BENCH_PACED_ROUNDS ?? 3);
const PACED_CONNECTIONS = 8;
const PACED_DELAY_MS = 4;
/** Targets of the paced runs. */
const PACED = [
  "passthrough",
  "forwarding",
  "oneRoute",
  "tenThousandRoutes",
  "tenThousandCompiled",
  "sticky",
  "nginx",
  "haproxy",
];

interface Round {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  cpuUsPerRequest: number | null;
  errors: number;
}

function pinned(command: string, args: string[]): ChildProcess {
  return spawn("taskset", ["-c", PROXY_CORE, command, ...args], {
    stdio: ["ignore", "ignore", process.env.BENCH_VERBOSE ? "inherit" : "ignore"],
  });
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

async function main(): Promise<void> {
  execFileSync("sh", [join(ROOT, "scripts/system-deps.sh"), "bench"], { stdio: "inherit" });
  const cores = cpus().length;
  if (cores < 2) throw new Error("bench:proxy needs 2 cores: one for the proxies, one for wrk");
  // This script and the backends live on the load core with wrk.
  pinToLoadCore();
  const backends = await startBenchBackends(3);
  const closed = await closedPortUrl();
  const dir = await mkdtemp(join(tmpdir(), "switchyard-bench-proxy-"));
  const children: ChildProcess[] = [];
  try {
    await bundle("bench/workerd/switchyard-entry.ts", join(dir, "switchyard.js"));
    await bundle("bench/workerd/switchyard-entry.ts", join(dir, NO_WARM_UP_ENTRY), withoutWarmUp());
    await bundle("bench/workerd/passthrough-entry.ts", join(dir, "passthrough.js"));
    await bundle("bench/workerd/forwarding-entry.ts", join(dir, "forwarding.js"));
    const urls = backends.map((b) => b.url);
    const threeEndpoints = { endpoints: urls.map((url, i) => ({ url, weight: i === 0 ? 2 : 1 })) };
    const kv = (doc: unknown) => JSON.stringify({ routes: JSON.stringify(doc) });
    const oneRoute = oneRouteDocument(threeEndpoints);
    const bigDocument = { ...syntheticRoutes(10_000, 1), pools: { "pool-0": threeEndpoints } };
    const bigCompiled = compiledKv(bigDocument);
    const base = 19_100 + Math.floor(Math.random() * 400);
    const workers: (WorkerService & { label: string; key: string; host: string })[] = [
      {
        label: "passthrough worker",
        key: "passthrough",
        name: "passthrough",
        port: base,
        entry: "passthrough.js",
        bindings: { BACKEND: urls[0] as string },
        host: "x.test",
      },
      {
        label: "passthrough adding X-Forwarded-Proto/-Host, X-Request-Id",
        key: "forwarding",
        name: "forwarding",
        port: base + 5,
        entry: "forwarding.js",
        bindings: { BACKEND: urls[0] as string },
        host: "x.test",
      },
      {
        label: "Switchyard, 1 route, 3 endpoints",
        key: "oneRoute",
        name: "one",
        port: base + 1,
        entry: "switchyard.js",
        bindings: { KV_JSON: kv(oneRoute) },
        host: "x.test",
      },
      {
        label: "Switchyard, 10,000 routes",
        key: "tenThousandRoutes",
        name: "big",
        port: base + 2,
        entry: "switchyard.js",
        // A refresh every 2 s (CONFIG_REFRESH_SECONDS is 10 by default), so that every run
        // spans refreshes of the 7.4 MB document.
        bindings: { KV_JSON: kv(bigDocument), REFRESH_MS: "2000" },
        host: "svc-4242.example.com",
      },
      {
        label: "Switchyard, 10,000 routes, compiled layout",
        key: "tenThousandCompiled",
        name: "bigc",
        port: base + 6,
        entry: "switchyard.js",
        // The same document as `switchyard push` writes it: the isolate reads the head and the
        // shard of the host it serves, and a refresh (every 2 s here) the routes key's metadata.
        bindings: {
          KV_JSON: JSON.stringify(bigCompiled.entries),
          KV_METADATA_JSON: JSON.stringify(bigCompiled.metadata),
          REFRESH_MS: "2000",
        },
        host: "svc-4242.example.com",
      },
      {
        label: "Switchyard, sticky cookie sent",
        key: "sticky",
        name: "sticky",
        port: base + 3,
        entry: "switchyard.js",
        bindings: {
          STICKY_SECRET: BENCH_STICKY_SECRET,
          KV_JSON: kv(
            oneRouteDocument(threeEndpoints, {
              name: "web",
              sessionPersistence: { idleTimeout: "30m" },
            }),
          ),
        },
        host: "x.test",
      },
      {
        label: "Switchyard, a retry on every request",
        key: "retry",
        name: "retry",
        port: base + 4,
        entry: "switchyard.js",
        bindings: {
          NO_EJECT: "true",
          KV_JSON: kv({
            version: 1,
            routes: [
              { name: "bench", rules: [{ backendRefs: [{ pool: "p" }], retry: { attempts: 1 } }] },
            ],
            pools: { p: { endpoints: [{ url: closed }, { url: urls[0] }] } },
          }),
        },
        host: "x.test",
      },
    ];
    const targets: Target[] = [
      {
        label: "backend directly",
        key: "backend",
        port: backends[0]?.port as number,
        host: "x.test",
      },
    ];
    /** Per worker: process start to first answer (which loads the snapshot), then the first routed request. */
    const startup: Record<string, { readyMs: number; firstRequestMs: number; startCpuMs: number }> =
      {};
    /** Each worker's process, by target key, for the paced runs to start again. */
    const running = new Map<string, { name: string; config: string; child: ChildProcess }>();
    for (const w of workers) {
      const config = join(dir, `${w.name}.capnp`);
      await writeFile(config, workerdConfig([w]));
      const spawned = performance.now();
      const child = pinned(WORKERD_BINARY, ["serve", config, "--experimental"]);
      children.push(child);
      running.set(w.key, { name: w.name, config, child });
      await waitForPort(w.port, "127.0.0.1", "/__startup");
      const ready = performance.now();
      // The process's CPU up to its first answer: workerd's own start, the script's, and the
      // first request's, which loads the snapshot (compare with the passthrough's).
      const startCpuMs = (await cpuSeconds(child.pid as number)) * 1000;
      await firstAnswer(w.port, w.host);
      startup[w.key] = {
        readyMs: ready - spawned,
        firstRequestMs: performance.now() - ready,
        startCpuMs,
      };
      targets.push({
        label: w.label,
        key: w.key,
        port: w.port,
        host: w.host,
        pid: child.pid as number,
      });
    }
    const sticky = targets.find((t) => t.key === "sticky") as Target;
    sticky.headers = { Cookie: await stickyCookie(sticky.port, sticky.host) };
    // The passthrough sent the same request as the sticky target, cookie included: carrying a
    // Cookie header costs any proxy something (parsed, copied, written to the backend), so the
    // sticky rule's own cost is its ratio to this one.
    const passthroughTarget = targets.find((t) => t.key === "passthrough") as Target;
    targets.push({
      ...passthroughTarget,
      label: "passthrough worker, sticky cookie sent",
      key: "passthroughCookie",
      headers: sticky.headers,
    });

    const nginxPort = base + 10;
    await writeFile(join(dir, "nginx.conf"), nginxConfig(dir, nginxPort, backends));
    const nginx = pinned("/usr/sbin/nginx", [
      "-c",
      join(dir, "nginx.conf"),
      "-p",
      dir,
      "-e",
      "stderr",
    ]);
    children.push(nginx);
    await waitForPort(nginxPort);
    targets.push({
      label: "nginx, one worker",
      key: "nginx",
      port: nginxPort,
      host: "x.test",
      pid: nginx.pid as number,
    });
    const haproxyPort = base + 11;
    await writeFile(join(dir, "haproxy.cfg"), haproxyConfig(haproxyPort, backends));
    const haproxy = pinned("/usr/sbin/haproxy", ["-db", "-f", join(dir, "haproxy.cfg")]);
    children.push(haproxy);
    await waitForPort(haproxyPort);
    targets.push({
      label: "HAProxy, one thread",
      key: "haproxy",
      port: haproxyPort,
      host: "x.test",
      pid: haproxy.pid as number,
    });

    say(`warming up ${targets.length} targets`);
    for (const t of targets) await wrk(t, 2);
    const rounds = new Map<string, Round[]>(targets.map((t) => [t.key, []]));
    for (let r = 0; r < ROUNDS; r++) {
      for (const t of targets) {
        // A browser keeps the cookie the last answer set; wrk sends one fixed header, so it is
        // fetched fresh before each run, or it would age past the re-issue interval mid-run.
        if (t.key === "sticky") t.headers = { Cookie: await stickyCookie(t.port, t.host) };
        if (t.key === "passthroughCookie") t.headers = sticky.headers;
        const before = t.pid === undefined ? 0 : await cpuSeconds(t.pid);
        const run = await wrk(t, SECONDS);
        const after = t.pid === undefined ? 0 : await cpuSeconds(t.pid);
        const cpuUs = t.pid === undefined ? null : ((after - before) * 1e6) / run.requests;
        rounds.get(t.key)?.push({
          rps: run.rps,
          p50Ms: run.p50Ms,
          p99Ms: run.p99Ms,
          cpuUsPerRequest: cpuUs,
          errors: run.errors,
        });
        say(
          `round ${r + 1} ${t.label}: ${run.rps.toFixed(0)} req/s, p99 ${run.p99Ms} ms${cpuUs === null ? "" : `, ${cpuUs.toFixed(1)} µs CPU/req`}`,
        );
      }
    }
    // Latency at a fixed load: the same targets, paced, alternating, the medians of the rounds.
    const pacedScript = join(dir, "paced.lua");
    await writeFile(pacedScript, `function delay()\n  return ${PACED_DELAY_MS}\nend\n`);
    const pacedRuns = new Map<
      string,
      {
        rps: number;
        p50Ms: number;
        p99Ms: number;
        maxMs: number;
        /** The full collection after the round, ms (workerd targets). */
        collectionMs: number | null;
      }[]
    >();
    // The paced runs have workerd processes of their own, started with the inspector on for the
    // collections: it costs every isolate about 2 % more instructions a request, which the
    // saturated rounds are run without.
    for (const t of targets.filter((x) => PACED.includes(x.key))) {
      const started = running.get(t.key);
      if (!started) continue;
      await stopWorkerd(started.child);
      const inspectorPort = t.port + 100;
      const child = pinned(WORKERD_BINARY, [
        "serve",
        started.config,
        "--experimental",
        `--inspector-addr=127.0.0.1:${inspectorPort}`,
      ]);
      children.push(child);
      await waitForPort(t.port, "127.0.0.1", "/__startup");
      t.pid = child.pid as number;
      t.inspector = `ws://127.0.0.1:${inspectorPort}/${started.name}`;
      if (t.key === "sticky") t.headers = { Cookie: await stickyCookie(t.port, t.host) };
      await wrk(t, 2);
    }
    for (let r = 0; r < PACED_ROUNDS; r++) {
      for (const t of targets.filter((x) => PACED.includes(x.key))) {
        if (t.key === "sticky") t.headers = { Cookie: await stickyCookie(t.port, t.host) };
        if (t.inspector) await collectGarbage(t);
        const run = await wrk(t, PACED_SECONDS, {
          script: pacedScript,
          connections: PACED_CONNECTIONS,
        });
        if (run.errors > 0) throw new Error(`${t.label} answered errors in a paced run`);
        const collectionMs = t.inspector ? await collectGarbage(t) : null;
        const runs = pacedRuns.get(t.key) ?? [];
        runs.push({ ...run, collectionMs });
        pacedRuns.set(t.key, runs);
        say(
          `paced ${r + 1} ${t.label}: ${run.rps.toFixed(0)} req/s, p99 ${run.p99Ms} ms${collectionMs === null ? "" : `, full collection after it ${collectionMs.toFixed(1)} ms`}`,
        );
      }
    }
    const paced = [...pacedRuns].map(([key, runs]) => ({
      key,
      label: targets.find((t) => t.key === key)?.label ?? key,
      rps: median(runs.map((x) => x.rps)),
      p50Ms: median(runs.map((x) => x.p50Ms)),
      p99Ms: median(runs.map((x) => x.p99Ms)),
      maxMs: Math.max(...runs.map((x) => x.maxMs)),
      collectionMs:
        runs[0]?.collectionMs === null ? null : median(runs.map((x) => x.collectionMs as number)),
      rounds: runs,
    }));

    // A cold isolate's first requests: CPU per request, the document read whole or compiled.
    say("cold starts");
    const otherHosts = Array.from({ length: 20 }, (_, i) => `svc-${17 + i}.example.com`);
    const oneRouteCold = bothLayouts("oneRoute", "1 route", oneRoute, "x.test", ["x.test"]);
    const tenThousandCold = bothLayouts(
      "tenThousandRoutes",
      "10,000 routes",
      bigDocument,
      "svc-4242.example.com",
      otherHosts,
    );
    const coldStarts = await measureColdStarts({
      dir,
      entry: "switchyard.js",
      port: base + 30,
      runs: COLD_RUNS,
      cases: [
        ...oneRouteCold,
        ...tenThousandCold,
        // What the warm-up (worker/warm.ts) moves from the first request to the isolate's start.
        ...oneRouteCold.map(coldWithoutWarmUp),
        ...tenThousandCold.filter((c) => c.compiled).map(coldWithoutWarmUp),
      ],
    });

    // Scaling: routes × endpoints per pool, each against the passthrough in the same minute.
    const scaling: {
      routes: number;
      endpoints: number;
      throughput: number;
      cpu: number;
      p99Ms: number;
      passthroughP99Ms: number;
    }[] = [];
    if (process.env.BENCH_SCALING !== "false") {
      const farm = await startBenchBackends(1_000);
      try {
        const passthrough = targets.find((t) => t.key === "passthrough") as Target;
        for (const routeCount of [10, 1_000, 10_000]) {
          for (const endpointCount of [3, 100, 1_000]) {
            const doc = syntheticRoutes(routeCount, 1);
            const pool = { endpoints: farm.slice(0, endpointCount).map((b) => ({ url: b.url })) };
            const w = {
              name: "scaling",
              port: base + 20,
              entry: "switchyard.js",
              bindings: { KV_JSON: kv({ ...doc, pools: { "pool-0": pool } }) },
            };
            const config = join(dir, "scaling.capnp");
            await writeFile(config, workerdConfig([w]));
            const child = pinned(WORKERD_BINARY, ["serve", config, "--experimental"]);
            try {
              await waitForPort(w.port);
              const target: Target = {
                label: "scaling",
                key: "scaling",
                port: w.port,
                host: `svc-${Math.floor(routeCount / 2)}.example.com`,
                pid: child.pid as number,
              };
              await wrk(target, 1);
              const measure = async (t: Target) => {
                const before = await cpuSeconds(t.pid as number);
                const run = await wrk(t, SCALING_SECONDS);
                const cpu = ((await cpuSeconds(t.pid as number)) - before) * 1e6;
                return { ...run, cpuUs: cpu / run.requests };
              };
              const base0 = await measure(passthrough);
              const own = await measure(target);
              scaling.push({
                routes: routeCount,
                endpoints: endpointCount,
                throughput: own.rps / base0.rps,
                cpu: own.cpuUs / base0.cpuUs,
                p99Ms: own.p99Ms,
                passthroughP99Ms: base0.p99Ms,
              });
              say(
                `scaling ${routeCount} routes × ${endpointCount} endpoints: ${(own.rps / base0.rps).toFixed(2)}× passthrough`,
              );
            } finally {
              child.kill("SIGTERM");
              if (child.exitCode === null && child.signalCode === null) await once(child, "exit");
            }
          }
        }
      } finally {
        await Promise.all(farm.map((b) => b.close()));
      }
    }

    const pass = rounds.get("passthrough") as Round[];
    const forwarding = rounds.get("forwarding") as Round[];
    /** Medians of round-by-round ratios to a reference's rounds: throughput, CPU per request. */
    const ratios = (own: Round[], to: Round[], pid: number | undefined) => ({
      throughput: median(own.map((x, i) => x.rps / (to[i] as Round).rps)),
      cpu:
        pid === undefined
          ? null
          : median(
              own.map(
                (x, i) =>
                  (x.cpuUsPerRequest as number) / ((to[i] as Round).cpuUsPerRequest as number),
              ),
            ),
    });
    const summary = targets.map((t) => {
      const own = rounds.get(t.key) as Round[];
      const { throughput, cpu } = ratios(own, pass, t.pid);
      const toForwarding = ratios(own, forwarding, t.pid);
      const toSameRequest =
        t.key === "sticky"
          ? ratios(own, rounds.get("passthroughCookie") as Round[], t.pid)
          : undefined;
      return {
        label: t.label,
        key: t.key,
        rps: median(own.map((x) => x.rps)),
        p50Ms: median(own.map((x) => x.p50Ms)),
        p99Ms: median(own.map((x) => x.p99Ms)),
        cpuUsPerRequest:
          t.pid === undefined ? null : median(own.map((x) => x.cpuUsPerRequest as number)),
        throughput,
        cpu,
        /** The same ratios to the passthrough that adds the proxy headers. */
        forwarding: toForwarding,
        /** Sticky only: the ratios to the passthrough sent the same cookie. */
        ...(toSameRequest ? { sameRequest: toSameRequest } : {}),
        errors: own.reduce((n, x) => n + x.errors, 0),
        rounds: own,
      };
    });
    const bundleBytes = (await stat(join(dir, "switchyard.js"))).size;
    const result = {
      at: new Date().toISOString(),
      machine: `${cores} cores, ${/model name\s*:\s*(.*)/.exec(await readFile("/proc/cpuinfo", "utf8"))?.[1] ?? "?"}`,
      method: {
        rounds: ROUNDS,
        seconds: SECONDS,
        connections: CONNECTIONS,
        proxyCore: PROXY_CORE,
        loadCore: LOAD_CORE,
      },
      bundleBytes,
      startup,
      coldStarts,
      targets: summary,
      paced: {
        connections: PACED_CONNECTIONS,
        delayMs: PACED_DELAY_MS,
        seconds: PACED_SECONDS,
        rounds: PACED_ROUNDS,
        /** Each workerd isolate's, through its inspector, in processes of the paced runs' own. */
        fullCollections: "before and after each round",
        targets: paced,
      },
      scaling,
    };
    await mkdir(join(ROOT, "bench-results"), { recursive: true });
    await writeFile(join(ROOT, "bench-results/proxy.json"), `${JSON.stringify(result, null, 2)}\n`);
    await writeFile(
      join(ROOT, "bench-results/proxy.svg"),
      proxyChart(
        summary
          .filter((s) => s.key !== "backend")
          .map((s) => ({ label: s.label, throughput: s.throughput, cpu: s.cpu })),
      ),
    );
    console.log(
      `\n${result.machine}; wrk -t1 -c${CONNECTIONS}, ${ROUNDS} rounds of ${SECONDS} s, medians; proxies on core ${PROXY_CORE}, wrk and backends on core ${LOAD_CORE}.\n`,
    );
    console.log(
      "| target | req/s | × passthrough | CPU µs/req | CPU × passthrough | × forwarding | CPU × forwarding | p50 ms | p99 ms | errors |",
    );
    console.log("|---|---|---|---|---|---|---|---|---|---|");
    const fixed = (x: number | null) => (x === null ? "–" : x.toFixed(2));
    for (const s of summary)
      console.log(
        `| ${s.label} | ${s.rps.toFixed(0)} | ${s.throughput.toFixed(2)} | ${s.cpuUsPerRequest === null ? "–" : s.cpuUsPerRequest.toFixed(1)} | ${fixed(s.cpu)} | ${s.forwarding.throughput.toFixed(2)} | ${fixed(s.forwarding.cpu)} | ${s.p50Ms.toFixed(2)} | ${s.p99Ms.toFixed(2)} | ${s.errors} |`,
      );
    console.log(
      "\n(× forwarding: ratios to the passthrough that adds X-Forwarded-Proto/-Host and X-Request-Id.)",
    );
    const stickySame = summary.find((x) => x.key === "sticky")?.sameRequest;
    if (stickySame)
      console.log(
        `Sticky cookie sent, against the passthrough sent the same cookie: ${stickySame.throughput.toFixed(2)}× its throughput, ${fixed(stickySame.cpu)}× its CPU per request.`,
      );
    const pacedPass = paced.find((x) => x.key === "passthrough");
    console.log(
      `\nLatency at a fixed load: wrk -t1 -c${PACED_CONNECTIONS}, each connection waiting ${PACED_DELAY_MS} ms between an answer and its next request; ${PACED_ROUNDS} rounds of ${PACED_SECONDS} s, each workerd isolate fully collected right before and after each round, medians (max: the longest of all rounds).\n`,
    );
    console.log(
      "| target | req/s | p50 ms | p99 ms | p99 − passthrough's, ms | max ms | full collection after a round, ms |",
    );
    console.log("|---|---|---|---|---|---|---|");
    for (const x of paced)
      console.log(
        `| ${x.label} | ${x.rps.toFixed(0)} | ${x.p50Ms.toFixed(2)} | ${x.p99Ms.toFixed(2)} | ${pacedPass ? (x.p99Ms - pacedPass.p99Ms).toFixed(2) : "–"} | ${x.maxMs.toFixed(1)} | ${x.collectionMs === null ? "–" : x.collectionMs.toFixed(1)} |`,
      );
    if (scaling.length > 0) {
      console.log(
        `\nScaling, ${SCALING_SECONDS} s each right after the passthrough, ratios to it:\n`,
      );
      console.log(
        "| routes | endpoints per pool | × passthrough | CPU × passthrough | p99 ms (passthrough) |",
      );
      console.log("|---|---|---|---|---|");
      for (const r of scaling)
        console.log(
          `| ${r.routes.toLocaleString("en")} | ${r.endpoints.toLocaleString("en")} | ${r.throughput.toFixed(2)} | ${r.cpu.toFixed(2)} | ${r.p99Ms.toFixed(1)} (${r.passthroughP99Ms.toFixed(1)}) |`,
        );
    }
    console.log(
      "\n| worker | process start to first answer (the snapshot's cold load included) | CPU until then | first routed request |",
    );
    console.log("|---|---|---|---|");
    for (const w of workers) {
      const t = startup[w.key] as { readyMs: number; firstRequestMs: number; startCpuMs: number };
      console.log(
        `| ${w.label} | ${t.readyMs.toFixed(0)} ms | ${t.startCpuMs.toFixed(0)} ms | ${t.firstRequestMs.toFixed(1)} ms |`,
      );
    }
    console.log(
      `\nA cold isolate's requests, CPU of workerd's main thread, medians of ${COLD_RUNS} fresh processes:\n`,
    );
    console.log(
      "| worker | the isolate's start | first request | a host of another shard | warm |",
    );
    console.log("|---|---|---|---|---|");
    for (const c of coldStarts)
      console.log(
        `| ${c.label} | ${c.startCpuMs.toFixed(1)} ms | ${c.firstRequestCpuMs.toFixed(2)} ms | ${c.otherShardCpuMs.toFixed(2)} ms | ${c.warmCpuMs.toFixed(2)} ms |`,
      );
    console.log(
      `\nSwitchyard bundle (esbuild, unminified): ${(bundleBytes / 1024).toFixed(0)} KiB. Written: bench-results/proxy.json, bench-results/proxy.svg`,
    );
  } finally {
    for (const child of children) child.kill("SIGTERM");
    await Promise.all(
      children.map((c) =>
        c.exitCode === null && c.signalCode === null ? once(c, "exit") : undefined,
      ),
    );
    await Promise.all(backends.map((b) => b.close()));
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
