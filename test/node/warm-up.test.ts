import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serveBundle } from "../../bench/bare-workerd.ts";

/**
 * The warm-up runs in the isolate's global scope, where the runtime refuses I/O, timers, random
 * numbers and a Response with a body; a unit test runs inside a request, where all of them are
 * allowed. So this runs it where it runs in production, in bare `workerd serve`.
 */

let worker: { stop(): Promise<void> } | undefined;
const port = 19_000 + Math.floor(Math.random() * 500);

beforeAll(async () => {
  worker = await serveBundle("test/worker/warm-up-entry.ts", {
    name: "warm-up",
    port,
    bindings: {},
  });
}, 60_000);

afterAll(async () => {
  await worker?.stop();
});

describe("the warm-up in an isolate's global scope", () => {
  it("serves every one of its requests, with nothing the global scope refuses", async () => {
    const response = await fetch(`http://127.0.0.1:${port}/`);
    expect(await response.text()).toBe("warmed up");
  });
});
