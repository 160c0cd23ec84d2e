import type { TestProject } from "vitest/node";
import {
  type Backend,
  closedPortUrl,
  FAILING_BEHAVIORS,
  startBackend,
} from "../../local/backends.ts";

/** Starts the loopback backends the workerd suites send traffic to; runs in Node. */
export default async function setup(project: TestProject) {
  const backends: Backend[] = await Promise.all([
    ...["a", "b", "c", "d"].map((name) => startBackend(name)),
    ...FAILING_BEHAVIORS.map((behavior) => startBackend(behavior, { behavior })),
  ]);
  project.provide("backends", {
    ...Object.fromEntries(backends.map((backend) => [backend.name, backend.url])),
    closed: await closedPortUrl(),
  });
  return async () => {
    await Promise.all(backends.map((backend) => backend.close()));
  };
}

declare module "vitest" {
  export interface ProvidedContext {
    backends: Record<string, string>;
  }
}
