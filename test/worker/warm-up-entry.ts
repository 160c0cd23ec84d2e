// A worker that runs the warm-up in its global scope, as worker/index.ts does, and answers
// with its outcome: test/node/warm-up.test.ts runs it in bare `workerd serve`, where the
// global scope's rules (no I/O, timers, random numbers or Response bodies) hold as in production.
import { warmUp } from "../../worker/warm.ts";

const outcome = warmUp();

export default {
  async fetch(): Promise<Response> {
    return new Response((await outcome) ?? "warmed up");
  },
};
