// The CPU of a cold isolate's first requests, for bench:proxy: each configuration in fresh
// `workerd serve` processes, each request's CPU read from workerd's main thread.
import { writeFile } from "node:fs/promises";
import { request } from "node:http";
import { join } from "node:path";
import { shardOf } from "../contract/index.ts";
import {
  compiledKv,
  mainThreadCpuMs,
  median,
  PROXY_CORE,
  startWorkerd,
  stopWorkerd,
  waitForPort,
  workerdConfig,
} from "./bare-workerd.ts";

export interface ColdStartCase {
  label: string;
  key: string;
  /** The routes document (with its pools), as an operator writes it. */
  document: unknown;
  /** Written as `switchyard push` writes it (the compiled layout), or whole, as wrangler does. */
  compiled: boolean;
  /** The host of the first request. */
  host: string;
  /** Hosts that may serve a second request: the first whose shard differs from `host`'s is used. */
  otherHosts: string[];
  /** The bundle to run, in the options' `dir`, when not the options' `entry`. */
  entry?: string;
}

/** The case of a document read whole and of its compiled layout, with keys and labels that say which. */
export function bothLayouts(
  key: string,
  label: string,
  document: unknown,
  host: string,
  otherHosts: string[],
): ColdStartCase[] {
  return [false, true].map((compiled) => ({
    compiled,
    key: `${key}${compiled ? "Compiled" : "Whole"}`,
    label: `Switchyard, ${label}, ${compiled ? "compiled layout" : "read whole"}`,
    document,
    host,
    otherHosts,
  }));
}

export interface ColdStartFigures {
  label: string;
  key: string;
  compiled: boolean;
  /**
   * Medians over the processes, in ms of CPU of workerd's main thread. The process's start up to
   * its first answer: workerd's own start and the script's global scope, the warm-up included
   * (the probes that found the port open are answered before anything is built).
   */
  startCpuMs: number;
  firstRequestCpuMs: number;
  /** A request for a host of another shard (the same host when the document has one shard). */
  otherShardCpuMs: number;
  /** The first host again, everything in memory. */
  warmCpuMs: number;
  /** Every process's four figures, in the order above. */
  runs: [number, number, number, number][];
}

function get(port: number, host: string, path = "/bench"): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, headers: { host } }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", reject);
    req.end();
  });
}

/** The CPU of one request, on workerd's main thread; throws unless it answered 200. */
async function requestCpuMs(pid: number, port: number, host: string): Promise<number> {
  const before = await mainThreadCpuMs(pid);
  const status = await get(port, host);
  if (status !== 200) throw new Error(`${host} answered ${status} in a cold-start run`);
  return (await mainThreadCpuMs(pid)) - before;
}

/**
 * Runs each case in `runs` fresh processes on the proxy core. The in-memory KV of the bench
 * entry is built by a request of its own first (`/__bench/kv`), since a Worker's KV reads are
 * the runtime's work, not the script's; the app is built at the script's start, as
 * worker/index.ts builds it.
 */
export async function measureColdStarts(options: {
  dir: string;
  /** The bench entry's bundle, in `dir`. */
  entry: string;
  port: number;
  runs: number;
  cases: ColdStartCase[];
}): Promise<ColdStartFigures[]> {
  const figures: ColdStartFigures[] = [];
  for (const c of options.cases) {
    const kv = c.compiled
      ? compiledKv(c.document)
      : { entries: { routes: JSON.stringify(c.document) }, metadata: {} };
    const shards = Number((kv.metadata.routes as { shards?: number } | undefined)?.shards ?? 1);
    const other =
      c.otherHosts.find((h) => shardOf(h, shards) !== shardOf(c.host, shards)) ?? c.host;
    const config = join(options.dir, `cold-${c.key}.capnp`);
    await writeFile(
      config,
      workerdConfig([
        {
          name: "cold",
          port: options.port,
          entry: c.entry ?? options.entry,
          bindings: {
            KV_JSON: JSON.stringify(kv.entries),
            KV_METADATA_JSON: JSON.stringify(kv.metadata),
            BENCH_PATHS: "true",
          },
        },
      ]),
    );
    const runs: [number, number, number, number][] = [];
    for (let r = 0; r < options.runs; r++) {
      const child = startWorkerd(config, { core: PROXY_CORE });
      try {
        await waitForPort(options.port, "127.0.0.1", "/__bench/ready");
        const pid = child.pid as number;
        const startCpuMs = await mainThreadCpuMs(pid);
        if ((await get(options.port, "x.test", "/__bench/kv")) !== 200)
          throw new Error("the bench entry did not build its KV");
        runs.push([
          startCpuMs,
          await requestCpuMs(pid, options.port, c.host),
          await requestCpuMs(pid, options.port, other),
          await requestCpuMs(pid, options.port, c.host),
        ]);
      } finally {
        await stopWorkerd(child);
      }
    }
    figures.push({
      label: c.label,
      key: c.key,
      compiled: c.compiled,
      startCpuMs: median(runs.map((x) => x[0])),
      firstRequestCpuMs: median(runs.map((x) => x[1])),
      otherShardCpuMs: median(runs.map((x) => x[2])),
      warmCpuMs: median(runs.map((x) => x[3])),
      runs,
    });
  }
  return figures;
}
