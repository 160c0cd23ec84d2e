import { createApp } from "./app.ts";
import type { Env } from "./env.ts";
import { startWarmUp } from "./warm.ts";

const app = createApp();

// While the isolate starts: the request path compiled before the first request (warm.ts).
startWarmUp();

export default {
  fetch: (request, env, ctx) => app.fetch(request, env, ctx),
} satisfies ExportedHandler<Env>;
