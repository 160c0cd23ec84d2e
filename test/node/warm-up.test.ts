import type { ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  bundle,
  startWorkerd,
  stopWorkerd,
  waitForPort,
  workerdConfig,
} from "../../bench/bare-workerd.ts";

/**
 * The warm-up runs in the isolate's global scope, where the runtime refuses I/O, timers, random
 * numbers and a Response with a body; a unit test runs inside a request, where all of them are
 * allowed. So this runs it where it runs in production, in bare `workerd serve`.
 */

let worker: ChildProcess | undefined;
let dir: string;
const port = 19_000 + Math.floor(Math.random() * 500);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "switchyard-warm-up-"));
  await bundle("test/worker/warm-up-entry.ts", join(dir, "warm-up.js"));
  await writeFile(
    join(dir, "warm-up.capnp"),
    workerdConfig([{ name: "warm", port, entry: "warm-up.js", bindings: {} }]),
  );
  worker = startWorkerd(join(dir, "warm-up.capnp"));
  await waitForPort(port);
}, 60_000);

afterAll(async () => {
  if (worker) await stopWorkerd(worker);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("the warm-up in an isolate's global scope", () => {
  it("serves every one of its requests, with nothing the global scope refuses", async () => {
    const response = await fetch(`http://127.0.0.1:${port}/`);
    expect(await response.text()).toBe("warmed up");
  });
});
