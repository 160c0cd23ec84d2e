// Switchyard for the bare-workerd benchmarks (bench:proxy, bench:ablation): the real app with KV replaced by documents from
// text bindings, so workerd needs no KV service. NO_EJECT keeps failing endpoints in rotation
// and lifts the retry budget, so that every request of the retry scenario pays one retry.
import { createApp } from "../../worker/app.ts";
import { memoryKv } from "../../worker/config/memory-kv.ts";
import { ConfigStore } from "../../worker/config/store.ts";
import { HealthRegistry } from "../../worker/core/health.ts";
import { RetryBudgets } from "../../worker/core/retry-policy.ts";
import { RouteTable } from "../../worker/core/route-table.ts";
import { TrafficCounters } from "../../worker/core/traffic.ts";
import { consoleLogger } from "../../worker/log.ts";
import { startWarmUp } from "../../worker/warm.ts";

interface BenchEnv {
  /** JSON object: KV key → value text. */
  KV_JSON: string;
  /** JSON object: KV key → its metadata (the compiled layout's `routes` key has some). */
  KV_METADATA_JSON?: string;
  NO_EJECT?: string;
  /** "true": the dashboard's traffic counters record nothing (for the ablation). */
  NO_TRAFFIC?: string;
  /** How often the store looks at KV again, in ms (10 s, as CONFIG_REFRESH_SECONDS's default). */
  REFRESH_MS?: string;
  /** "true": every read returns a new copy of the text, as Workers KV does (for bench:heap). */
  FRESH_TEXTS?: string;
  /** "true": the `/__bench/` paths are answered (for bench:heap); otherwise nothing is checked. */
  BENCH_PATHS?: string;
}

/** Counts nothing: what the dashboard's counters cost, by their absence. */
class NoTraffic extends TrafficCounters {
  override record(): void {}
}

/** Keeps no health at all: a failing endpoint stays in rotation. */
class NeverEject extends HealthRegistry {
  override record(): boolean {
    return false;
  }
}

/** A copy of a text in memory of its own, as Workers KV hands out on every read. */
function copied(text: string | undefined): string | null {
  return text === undefined ? null : (JSON.parse(JSON.stringify(text)) as string);
}

function benchKv(
  entries: Record<string, string>,
  metadata: Record<string, unknown>,
  fresh: boolean,
): KVNamespace {
  const read = (key: string) => (fresh ? copied(entries[key]) : (entries[key] ?? null));
  return memoryKv(read, (key) => metadata[key] ?? null) as unknown as KVNamespace;
}

// As worker/index.ts does while the isolate starts.
startWarmUp();

let app: ReturnType<typeof createApp> | undefined;
/** The environment the app sees: the bindings with the in-memory KV as SWITCHYARD, built once. */
let appEnv: (BenchEnv & { SWITCHYARD: KVNamespace }) | undefined;

let store: ConfigStore | undefined;

/**
 * Paths for bench:heap and the cold starts of bench:proxy (with BENCH_PATHS=true), answered
 * before the app: `/__bench/ready` answers before anything is built (the isolate's start, and
 * nothing else), `/__bench/kv` only builds the in-memory KV (the heap before the store loads
 * anything), `/__bench/touch` builds every rule of the loaded snapshot, as if each had served
 * a request.
 */
function benchPath(path: string): Response | undefined {
  if (path === "/__bench/kv") return new Response("kv");
  if (path !== "/__bench/touch") return undefined;
  const snapshot = store?.snapshot;
  if (!snapshot) return new Response("no snapshot", { status: 503 });
  if (!(snapshot.routes instanceof RouteTable))
    return new Response("touch needs a document read whole", { status: 501 });
  let rules = 0;
  snapshot.routes.document().routes.forEach((route, r) => {
    for (let i = 0; i < route.rules.length; i++) if (snapshot.rule(r, i)) rules++;
  });
  return new Response(String(rules));
}

export default {
  fetch(request: Request, env: BenchEnv, ctx: ExecutionContext) {
    if (env.BENCH_PATHS === "true" && request.url.endsWith("/__bench/ready"))
      return new Response("ready");
    if (!app) {
      const log = { ...consoleLogger, info: () => {} };
      const kv = benchKv(
        JSON.parse(env.KV_JSON),
        JSON.parse(env.KV_METADATA_JSON ?? "{}"),
        env.FRESH_TEXTS === "true",
      );
      appEnv = { ...env, SWITCHYARD: kv };
      store = new ConfigStore({
        kv,
        refreshMs: Number(env.REFRESH_MS ?? 10_000),
        now: Date.now,
        log,
        local: true,
      });
      const noEject = env.NO_EJECT === "true";
      const traffic = env.NO_TRAFFIC === "true" ? new NoTraffic() : new TrafficCounters();
      const loaded = store;
      app = createApp({
        store: () => loaded,
        log,
        state: noEject
          ? { health: new NeverEject(), budgets: new RetryBudgets({ ratio: 1e9 }), traffic }
          : { health: new HealthRegistry(), budgets: new RetryBudgets(), traffic },
      });
    }
    // Only bench:heap asks for the bench paths: every other benchmark's request goes to the app
    // as production's entry sends it, without a read of its URL here.
    const bench =
      env.BENCH_PATHS === "true" && request.url.includes("/__bench/")
        ? benchPath(new URL(request.url).pathname)
        : undefined;
    return bench ?? app.fetch(request, appEnv as never, ctx);
  },
};
