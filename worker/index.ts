import { createApp } from "./app.ts";
import type { Env } from "./env.ts";
import { consoleLogger } from "./log.ts";
import { warmUp } from "./warm.ts";

const app = createApp();

// While the isolate starts: the request path compiled before the first request (warm.ts).
void warmUp().then((failure) => {
  if (failure !== undefined) consoleLogger.error("warm-up failed", { error: failure });
});

export default {
  fetch: (request, env, ctx) => app.fetch(request, env, ctx),
} satisfies ExportedHandler<Env>;
