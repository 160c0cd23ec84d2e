// Switchyard for the bare-workerd benchmarks (bench:proxy, bench:ablation): the real app with KV replaced by documents from
// text bindings, so workerd needs no KV service. NO_EJECT keeps failing endpoints in rotation
// and lifts the retry budget, so that every request of the retry scenario pays one retry.
import { createApp } from "../../worker/app.ts";
import { ConfigStore } from "../../worker/config/store.ts";
import { HealthRegistry } from "../../worker/core/health.ts";
import { RetryBudget } from "../../worker/core/retry-policy.ts";
import { TrafficCounters } from "../../worker/core/traffic.ts";
import { consoleLogger } from "../../worker/log.ts";

interface BenchEnv {
  /** JSON object: KV key → value text. */
  KV_JSON: string;
  NO_EJECT?: string;
  /** "true": the dashboard's traffic counters record nothing (for the ablation). */
  NO_TRAFFIC?: string;
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

function memoryKv(entries: Record<string, string>): KVNamespace {
  const get = async (key: string | string[]) =>
    Array.isArray(key) ? new Map(key.map((k) => [k, entries[k] ?? null])) : (entries[key] ?? null);
  return { get } as unknown as KVNamespace;
}

let app: ReturnType<typeof createApp> | undefined;
/** The environment the app sees: the bindings with the in-memory KV as SWITCHYARD, built once. */
let appEnv: (BenchEnv & { SWITCHYARD: KVNamespace }) | undefined;

export default {
  fetch(request: Request, env: BenchEnv, ctx: ExecutionContext) {
    if (!app) {
      const log = { ...consoleLogger, info: () => {} };
      const kv = memoryKv(JSON.parse(env.KV_JSON));
      appEnv = { ...env, SWITCHYARD: kv };
      const store = new ConfigStore({
        kv,
        refreshMs: 10_000,
        now: Date.now,
        log,
        local: true,
      });
      const noEject = env.NO_EJECT === "true";
      const traffic = env.NO_TRAFFIC === "true" ? new NoTraffic() : new TrafficCounters();
      app = createApp({
        store: () => store,
        log,
        state: noEject
          ? { health: new NeverEject(), budget: new RetryBudget({ ratio: 1e9 }), traffic }
          : { health: new HealthRegistry(), budget: new RetryBudget(), traffic },
      });
    }
    return app.fetch(request, appEnv as never, ctx);
  },
};
