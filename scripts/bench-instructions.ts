// `npm run bench:instructions`: what a request costs each worker in instructions, counted by
// callgrind (valgrind) in a `workerd serve` of its own: the passthrough, the forwarding
// passthrough and Switchyard with one route, 10,000 routes and a sticky cookie sent. Unlike CPU
// time, an instruction count does not move with the machine's load: two counts of the same
// worker agree within about 0.1 %, so a change of a few hundred instructions a request shows.
// What it misses is what an instruction costs (cache misses, the kernel's share of the work),
// which bench:proxy measures. BENCH_BASELINE=<commit> also counts Switchyard at that commit;
// BENCH_ONLY=key,… counts only those targets besides the two passthroughs; BENCH_ABLATE=true
// also counts the one-route worker with the header checks a proxy must make taken out, step by
// step (bench/ablations.ts), about five minutes more; BENCH_PROFILE=true counts it once more
// with V8's perf map on and prints the instructions a request of each of its JavaScript
// functions (callgrind knows V8's compiled code only by its address; the map names it).
// Each worker: BENCH_WARMUP requests (default 3,000) so that V8 has compiled the hot path, the
// counters zeroed, BENCH_REQUESTS (default 2,000) counted. V8 runs `--single-threaded`: its
// compilers then run on the isolate's thread, so the optimized code is in place when counting
// starts (under valgrind, background compile jobs lag far behind and leave the hot path in the
// interpreter). docs/benchmarks.md.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ABLATIONS, ablationEdits } from "../bench/ablations.ts";
import {
  BENCH_PERSISTENCE,
  BENCH_STICKY_SECRET,
  benchStickyCookie,
  bundle,
  bundleAtCommit,
  compiledKv,
  ROOT,
  startBenchBackends,
  WORKERD_BINARY,
  waitForPort,
  workerdConfig,
} from "../bench/bare-workerd.ts";
import { oneRouteDocument, syntheticRoutes } from "../bench/fixtures.ts";

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 2_000);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 3_000);
const BASELINE = process.env.BENCH_BASELINE;
const ABLATE = process.env.BENCH_ABLATE === "true";
const PROFILE = process.env.BENCH_PROFILE === "true";
const CONNECTIONS = 8;

interface Counted {
  key: string;
  label: string;
  entry: string;
  bindings: Record<string, string>;
  host: string;
  headers?: Record<string, string>;
  /** The passthrough sent the same request (the sticky cookie), for a ratio to it too. */
  sameRequestAs?: string;
}

/** `count` requests over CONNECTIONS keep-alive connections; throws on any answer but 200. */
async function load(port: number, target: Counted, count: number, agent: Agent): Promise<void> {
  let sent = 0;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const req = request(
        {
          host: "127.0.0.1",
          port,
          path: "/bench",
          headers: { host: target.host, ...target.headers },
          agent,
        },
        (res) => {
          if (res.statusCode !== 200)
            reject(new Error(`${target.label} answered ${res.statusCode}`));
          res.resume();
          res.on("end", resolve);
        },
      );
      req.on("error", reject);
      req.end();
    });
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (sent++ < count) await one();
    }),
  );
}

/** Instructions per request of one worker, counted by callgrind. */
async function count(
  dir: string,
  target: Counted,
  port: number,
  profile = false,
): Promise<{ perRequest: number; dump: string; pid: number }> {
  const config = join(dir, `${target.key}.capnp`);
  const v8Flags = profile ? ["--single-threaded", "--perf-basic-prof"] : ["--single-threaded"];
  await writeFile(
    config,
    workerdConfig([{ name: target.key, port, entry: target.entry, bindings: target.bindings }], {
      v8Flags,
    }),
  );
  const out = join(dir, `${target.key}.callgrind`);
  const child: ChildProcess = spawn(
    "valgrind",
    [
      "--tool=callgrind",
      `--callgrind-out-file=${out}`,
      WORKERD_BINARY,
      "serve",
      config,
      "--experimental",
    ],
    { stdio: "ignore" },
  );
  const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  try {
    // Under valgrind workerd takes seconds to start, a minute with the 10,000-route document.
    await waitForPort(port, "127.0.0.1", "/", 40_000);
    await load(port, target, WARMUP, agent);
    execFileSync("callgrind_control", ["--zero", String(child.pid)], { stdio: "ignore" });
    await load(port, target, REQUESTS, agent);
    execFileSync("callgrind_control", ["--dump", String(child.pid)], { stdio: "ignore" });
    const dump = (await readdir(dir)).find((f) => f.startsWith(`${target.key}.callgrind.`));
    if (!dump) throw new Error(`callgrind wrote no counts for ${target.label}`);
    const text = await readFile(join(dir, dump), "utf8");
    const total = Number(/^(?:summary|totals): (\d+)/m.exec(text)?.[1]);
    if (!Number.isFinite(total)) throw new Error(`no instruction total for ${target.label}`);
    return { perRequest: total / REQUESTS, dump: join(dir, dump), pid: child.pid as number };
  } finally {
    agent.destroy();
    child.kill("SIGKILL");
    if (child.exitCode === null && child.signalCode === null) await once(child, "exit");
  }
}

/**
 * The instructions a request of each function V8 compiled, from callgrind's dump (which knows
 * such code only by its address) and the perf map workerd's V8 wrote (`/tmp/perf-PID.map`:
 * address, size and name of each piece of code). A table of the largest, as markdown.
 */
async function jitProfile(dump: string, pid: number): Promise<string> {
  const mapFile = `/tmp/perf-${pid}.map`;
  const code = (await readFile(mapFile, "utf8"))
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [start, size, ...name] = line.split(" ");
      return {
        start: Number.parseInt(start as string, 16),
        size: Number.parseInt(size as string, 16),
        name: name.join(" "),
      };
    })
    .sort((a, b) => a.start - b.start);
  await rm(mapFile, { force: true });
  const annotated = execFileSync(
    "callgrind_annotate",
    ["--inclusive=no", "--threshold=100", dump],
    {
      maxBuffer: 256 * 1024 * 1024,
    },
  ).toString();
  const byName = new Map<string, number>();
  for (const line of annotated.split("\n")) {
    const m = /^\s*([\d,]+) \([ \d.]+%\)\s+\?\?\?:0x([0-9a-f]+)/.exec(line);
    if (!m) continue;
    const address = Number.parseInt(m[2] as string, 16);
    // The last piece of code starting at or before the address, if the address is inside it.
    let lo = 0;
    let hi = code.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((code[mid] as { start: number }).start <= address) lo = mid;
      else hi = mid - 1;
    }
    const found = code[lo];
    if (!found || address < found.start || address >= found.start + found.size) continue;
    const name = found.name.replace(/^JS:[*~^+']*/, "").replace(/ worker:\d+:\d+$/, "");
    byName.set(name, (byName.get(name) ?? 0) + Number((m[1] as string).replaceAll(",", "")));
  }
  const rows = [...byName].sort((a, b) => b[1] - a[1]);
  const total = rows.reduce((sum, [, n]) => sum + n, 0);
  return [
    `\nSwitchyard, 1 route: code V8 compiled, ${(total / REQUESTS / 1000).toFixed(1)}k instructions a request in all (builtins and the runtime's C++ not included), the largest:\n`,
    "| function | instructions a request |",
    "|---|---|",
    ...rows
      .slice(0, 20)
      .map(([name, n]) => `| ${name.replaceAll("|", "\\|")} | ${(n / REQUESTS).toFixed(0)} |`),
  ].join("\n");
}

execFileSync("sh", [join(ROOT, "scripts/system-deps.sh"), "bench"], { stdio: "inherit" });
const backends = await startBenchBackends(1);
const dir = await mkdtemp(join(tmpdir(), "switchyard-instructions-"));
try {
  await bundle("bench/workerd/passthrough-entry.ts", join(dir, "passthrough.js"));
  await bundle("bench/workerd/forwarding-entry.ts", join(dir, "forwarding.js"));
  await bundle("bench/workerd/switchyard-entry.ts", join(dir, "switchyard.js"));
  if (BASELINE)
    await bundleAtCommit(BASELINE, "bench/workerd/switchyard-entry.ts", join(dir, "baseline.js"), {
      currentEntry: true,
    });
  if (ABLATE)
    for (const [i, ablation] of ABLATIONS.entries())
      await bundle(
        "bench/workerd/switchyard-entry.ts",
        join(dir, `${ablation.key}.js`),
        ablationEdits(i),
      );
  // One endpoint, the passthrough's backend: with three, which backend connection a request
  // reuses varies from run to run, and the count with it (by up to 4k instructions).
  const url = backends[0]?.url as string;
  const oneEndpoint = { endpoints: [{ url }] };
  const kv = (doc: unknown) => JSON.stringify({ routes: JSON.stringify(doc) });
  const oneRoute = kv(oneRouteDocument(oneEndpoint));
  const sticky = {
    STICKY_SECRET: BENCH_STICKY_SECRET,
    KV_JSON: kv(
      oneRouteDocument(oneEndpoint, { name: "web", sessionPersistence: BENCH_PERSISTENCE }),
    ),
  };
  const bigDocument = { ...syntheticRoutes(10_000, 1), pools: { "pool-0": oneEndpoint } };
  const bigCompiled = compiledKv(bigDocument);
  const cookie = await benchStickyCookie(url);
  const backend = { BACKEND: url };
  const targets: Counted[] = [
    {
      key: "passthrough",
      label: "passthrough worker",
      entry: "passthrough.js",
      bindings: backend,
      host: "x.test",
    },
    {
      key: "forwarding",
      label: "passthrough adding X-Forwarded-Proto/-Host, X-Request-Id",
      entry: "forwarding.js",
      bindings: backend,
      host: "x.test",
    },
    {
      key: "passthroughCookie",
      label: "passthrough worker, sticky cookie sent",
      entry: "passthrough.js",
      bindings: backend,
      host: "x.test",
      headers: { cookie },
    },
    {
      key: "oneRoute",
      label: "Switchyard, 1 route",
      entry: "switchyard.js",
      bindings: { KV_JSON: oneRoute },
      host: "x.test",
    },
    {
      key: "tenThousandRoutes",
      label: "Switchyard, 10,000 routes",
      entry: "switchyard.js",
      // No refresh while counting: a refresh's cost is the first section's figure.
      bindings: { KV_JSON: kv(bigDocument), REFRESH_MS: "3600000" },
      host: "svc-4242.example.com",
    },
    {
      key: "tenThousandCompiled",
      label: "Switchyard, 10,000 routes, compiled layout",
      entry: "switchyard.js",
      bindings: {
        KV_JSON: JSON.stringify(bigCompiled.entries),
        KV_METADATA_JSON: JSON.stringify(bigCompiled.metadata),
        REFRESH_MS: "3600000",
      },
      host: "svc-4242.example.com",
    },
    {
      key: "sticky",
      label: "Switchyard, sticky cookie sent",
      entry: "switchyard.js",
      bindings: sticky,
      host: "x.test",
      headers: { cookie },
      sameRequestAs: "passthroughCookie",
    },
  ];
  if (BASELINE)
    targets.push(
      {
        key: "baselineOneRoute",
        label: `Switchyard at ${BASELINE}, 1 route`,
        entry: "baseline.js",
        bindings: { KV_JSON: oneRoute },
        host: "x.test",
      },
      {
        key: "baselineSticky",
        label: `Switchyard at ${BASELINE}, sticky cookie sent`,
        entry: "baseline.js",
        bindings: sticky,
        host: "x.test",
        headers: { cookie },
        sameRequestAs: "passthroughCookie",
      },
      {
        key: "baselineTenThousandRoutes",
        label: `Switchyard at ${BASELINE}, 10,000 routes`,
        entry: "baseline.js",
        bindings: { KV_JSON: kv(bigDocument), REFRESH_MS: "3600000" },
        host: "svc-4242.example.com",
      },
    );
  if (ABLATE)
    for (const ablation of ABLATIONS)
      targets.push({
        key: ablation.key,
        label: ablation.label,
        entry: `${ablation.key}.js`,
        bindings: { KV_JSON: oneRoute },
        host: "x.test",
      });
  // BENCH_ONLY=key,key: count only those targets (and the passthroughs the ratios need).
  const only = process.env.BENCH_ONLY?.split(",");
  if (only)
    for (let i = targets.length - 1; i >= 0; i--) {
      const key = (targets[i] as Counted).key;
      if (!only.includes(key) && key !== "passthrough" && key !== "forwarding")
        targets.splice(i, 1);
    }

  const counts = new Map<string, number>();
  let port = 19_600 + Math.floor(Math.random() * 300);
  for (const target of targets) {
    const { perRequest } = await count(dir, target, port++);
    counts.set(target.key, perRequest);
    process.stderr.write(`${target.label}: ${(perRequest / 1000).toFixed(1)}k instructions\n`);
  }
  const passthrough = counts.get("passthrough") as number;
  const forwarding = counts.get("forwarding") as number;
  const rows = targets.map((t) => {
    const own = counts.get(t.key) as number;
    const sameRequest = t.sameRequestAs === undefined ? undefined : counts.get(t.sameRequestAs);
    return {
      key: t.key,
      label: t.label,
      instructions: Math.round(own),
      passthrough: own / passthrough,
      forwarding: own / forwarding,
      ...(sameRequest === undefined ? {} : { sameRequest: own / sameRequest }),
    };
  });
  const result = {
    at: new Date().toISOString(),
    method: {
      requests: REQUESTS,
      warmup: WARMUP,
      connections: CONNECTIONS,
      v8: "--single-threaded",
    },
    targets: rows,
  };
  await mkdir(join(ROOT, "bench-results"), { recursive: true });
  await writeFile(
    join(ROOT, "bench-results/instructions.json"),
    `${JSON.stringify(result, null, 2)}\n`,
  );
  console.log(
    `\nInstructions a request under callgrind, ${REQUESTS} requests after ${WARMUP} (${CONNECTIONS} keep-alive connections, V8 --single-threaded):\n`,
  );
  console.log(
    "| target | instructions | × passthrough | × forwarding | × passthrough, same cookie |",
  );
  console.log("|---|---|---|---|---|");
  for (const r of rows)
    console.log(
      `| ${r.label} | ${(r.instructions / 1000).toFixed(1)}k | ${r.passthrough.toFixed(3)} | ${r.forwarding.toFixed(3)} | ${r.sameRequest === undefined ? "–" : r.sameRequest.toFixed(3)} |`,
    );
  // Counted once more for the profile: writing the perf map costs instructions of its own.
  const profiled = targets.find((t) => t.key === "oneRoute");
  if (PROFILE && profiled) {
    const { dump, pid } = await count(dir, { ...profiled, key: "profile" }, port++, true);
    console.log(await jitProfile(dump, pid));
  }
  console.log("\nWritten: bench-results/instructions.json");
} finally {
  await Promise.all(backends.map((b) => b.close()));
  await rm(dir, { recursive: true, force: true });
}
