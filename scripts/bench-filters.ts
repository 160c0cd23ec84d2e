// `npm run bench:filters`: what HTTPRoute filters cost, in bare workerd (docs/benchmarks.md).
// Switchyard as it was before filters existed (BENCH_BASELINE, a commit; skipped when the clone
// has no such commit) against Switchyard now on a rule without filters, and against rules with
// each filter, all against the passthrough worker, each in its own `workerd serve` pinned to
// core 0 with wrk and the backend on core 1. Medians of BENCH_ROUNDS (default 6) rounds of 4 s.
import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  bundle,
  bundleAtCommit,
  type CpuVariant,
  measureCpu,
  median,
  pinToLoadCore,
  startBenchBackends,
} from "../bench/bare-workerd.ts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 6);
/** The last commit before filters. */
const BASELINE = process.env.BENCH_BASELINE ?? "5aaf566";

execFileSync("sh", ["scripts/system-deps.sh", "bench"], { stdio: "inherit" });
pinToLoadCore();
const [backend] = await startBenchBackends(1);
const url = (backend as { url: string }).url;
const dir = await mkdtemp(join(tmpdir(), "switchyard-filters-"));
try {
  await bundle("bench/workerd/switchyard-entry.ts", join(dir, "switchyard.js"));
  await bundle("bench/workerd/passthrough-entry.ts", join(dir, "passthrough.js"));
  let baseline = false;
  try {
    await bundleAtCommit(BASELINE, "bench/workerd/switchyard-entry.ts", join(dir, "baseline.js"));
    baseline = true;
  } catch (error) {
    console.log(
      `no baseline: commit ${BASELINE} is not in this clone (${(error as Error).message.split("\n")[0]})`,
    );
  }

  /** The KV of one route on x.test with this rule: by default a PathPrefix to pool "p". */
  const kv = (rule: Record<string, unknown>) =>
    JSON.stringify({
      routes: JSON.stringify({
        version: 1,
        routes: [
          {
            name: "bench",
            hostnames: ["x.test"],
            rules: [
              {
                matches: [{ path: { type: "PathPrefix", value: "/bench" } }],
                backendRefs: [{ pool: "p" }],
                ...rule,
              },
            ],
          },
        ],
        pools: { p: { endpoints: [{ url }] } },
      }),
    });
  const filter = (type: string, field: string, settings: unknown) => ({
    filters: [{ type, [field]: settings }],
  });
  const variants: CpuVariant[] = [
    { label: "passthrough", entry: "passthrough.js", bindings: { BACKEND: url } },
    ...(baseline
      ? [
          {
            label: `Switchyard before filters (${BASELINE})`,
            entry: "baseline.js",
            bindings: { KV_JSON: kv({}) },
          },
        ]
      : []),
    {
      label: "Switchyard, rule without filters",
      entry: "switchyard.js",
      bindings: { KV_JSON: kv({}) },
    },
    {
      label: "RequestHeaderModifier (set, add, remove)",
      entry: "switchyard.js",
      bindings: {
        KV_JSON: kv(
          filter("RequestHeaderModifier", "requestHeaderModifier", {
            set: [{ name: "X-Env", value: "prod" }],
            add: [{ name: "X-Tag", value: "edge" }],
            remove: ["X-Debug"],
          }),
        ),
      },
    },
    {
      label: "URLRewrite (ReplacePrefixMatch)",
      entry: "switchyard.js",
      bindings: {
        KV_JSON: kv(
          filter("URLRewrite", "urlRewrite", {
            path: { type: "ReplacePrefixMatch", replacePrefixMatch: "/v2" },
          }),
        ),
      },
    },
    {
      label: "ResponseHeaderModifier (copies the response)",
      entry: "switchyard.js",
      bindings: {
        KV_JSON: kv(
          filter("ResponseHeaderModifier", "responseHeaderModifier", {
            set: [{ name: "Cache-Control", value: "no-store" }],
          }),
        ),
      },
    },
    {
      label: "CORS, request from an allowed origin",
      entry: "switchyard.js",
      bindings: { KV_JSON: kv(filter("CORS", "cors", { allowOrigins: ["https://app.example"] })) },
      headers: { Origin: "https://app.example" },
    },
    {
      label: "RequestRedirect (answered at the edge)",
      entry: "switchyard.js",
      bindings: {
        KV_JSON: kv({
          ...filter("RequestRedirect", "requestRedirect", { hostname: "y.test" }),
          backendRefs: [],
        }),
      },
    },
  ];
  const figures = await measureCpu(dir, variants, {
    rounds: ROUNDS,
    seconds: 4,
    firstPort: 19_900 + Math.floor(Math.random() * 100),
  });
  const pass = figures[0] as (typeof figures)[number];
  console.log(
    `| variant | req/s × passthrough | CPU µs/request | CPU × passthrough | CPU, all rounds |`,
  );
  console.log("|---|---|---|---|---|");
  for (const f of figures) {
    // Ratios round by round, then the median: the machine's drift cancels within a round.
    const rps = median(f.rps.map((x, i) => x / (pass.rps[i] as number)));
    const cpu = median(f.cpu.map((x, i) => x / (pass.cpu[i] as number)));
    console.log(
      `| ${f.label} | ${rps.toFixed(2)} | ${median(f.cpu).toFixed(0)} | ${cpu.toFixed(2)} | ${f.cpu.map((x) => x.toFixed(0)).join(" ")} |`,
    );
  }
} finally {
  await backend?.close();
  await rm(dir, { recursive: true, force: true });
}
