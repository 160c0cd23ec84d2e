// `npm run bench:heap`: the heap of a Switchyard isolate in workerd itself, read through
// workerd's inspector (Runtime.getHeapUsage after HeapProfiler.collectGarbage): with the
// 10,000-route document and 1,000 pools of 100 endpoints loaded, then with every rule built as
// if each had served. The in-memory KV's own copy of the texts is measured first and left out,
// as Workers KV's copy is not the isolate's; like Workers KV, it hands out a new copy of a text on
// every read. docs/benchmarks.md.
import type { ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  bundle,
  inspectorSession,
  startWorkerd,
  stopWorkerd,
  waitForPort,
  within,
  workerdConfig,
} from "../bench/bare-workerd.ts";
import { syntheticPool, syntheticRoutes } from "../bench/fixtures.ts";

const PORT = 19_850 + Math.floor(Math.random() * 50);
const INSPECTOR = PORT + 100;

/** workerd's inspector, with the one measure this script takes. */
async function inspector(url: string) {
  const { send, close } = await inspectorSession(url);
  return {
    /**
     * The isolate's used heap after a full collection, in MiB. workerd runs the collection when
     * the isolate next takes a request: `poke` sends it requests until it has.
     */
    async usedMiB(poke: () => Promise<unknown>): Promise<number> {
      for (let i = 0; i < 2; i++) {
        let done = false;
        const collected = send("HeapProfiler.collectGarbage").then(() => {
          done = true;
        });
        // The collection may wait for a later request than the first: poke until it is answered.
        for (let poked = 0; !done && poked < 200; poked++) {
          await poke();
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        await collected;
      }
      const usage = (await send("Runtime.getHeapUsage")) as { usedSize: number };
      return usage.usedSize / 2 ** 20;
    },
    close,
  };
}

const dir = await mkdtemp(join(tmpdir(), "switchyard-heap-"));
const entries: Record<string, string> = {
  routes: JSON.stringify(syntheticRoutes(10_000, 1_000)),
};
for (let p = 0; p < 1_000; p++) entries[`pool:pool-${p}`] = JSON.stringify(syntheticPool(p, 100));
let child: ChildProcess | undefined;
try {
  await bundle("bench/workerd/switchyard-entry.ts", join(dir, "switchyard.js"));
  await writeFile(
    join(dir, "heap.capnp"),
    workerdConfig([
      {
        name: "heap",
        port: PORT,
        entry: "switchyard.js",
        bindings: { KV_JSON: JSON.stringify(entries), FRESH_TEXTS: "true", BENCH_PATHS: "true" },
      },
    ]),
  );
  child = startWorkerd(join(dir, "heap.capnp"), { inspectorPort: INSPECTOR });
  // A config with 17 MB of text bindings takes workerd a few seconds to read.
  for (let i = 0; ; i++) {
    try {
      await waitForPort(PORT, "127.0.0.1", "/__bench/kv");
      break;
    } catch (error) {
      if (i === 10) throw error;
    }
  }
  const cdp = await inspector(`ws://127.0.0.1:${INSPECTOR}/heap`);
  const get = async (path: string) => {
    const response = await within(fetch(`http://127.0.0.1:${PORT}${path}`), `GET ${path}`);
    const text = await response.text();
    // The first request loads the snapshot whatever it is answered (no route takes 127.0.0.1).
    if (!response.ok && path !== "/")
      throw new Error(`${path} answered ${response.status}: ${text}`);
    return text;
  };
  const poke = () => get("/__bench/kv");
  await poke();
  const kv = await cdp.usedMiB(poke);
  await get("/"); // the first request loads the snapshot
  const loaded = await cdp.usedMiB(poke);
  const rules = await get("/__bench/touch");
  const served = await cdp.usedMiB(poke);
  cdp.close();
  const texts = Object.values(entries).reduce((n, t) => n + t.length, 0) / 2 ** 20;
  console.log("| isolate heap in workerd (V8 used size, after a full collection) | MiB |");
  console.log("|---|---|");
  console.log(
    `| the bundle and the in-memory KV (${texts.toFixed(1)} MB of texts, twice) | ${kv.toFixed(1)} |`,
  );
  console.log(
    `| + the store loaded: 10,000 routes, 1,000 pools × 100 endpoints | +${(loaded - kv).toFixed(1)} |`,
  );
  console.log(`| + every rule built (${rules} rules) | +${(served - kv).toFixed(1)} |`);
} finally {
  if (child) await stopWorkerd(child);
  await rm(dir, { recursive: true, force: true });
}
