// Types of `env` and `exports` from "cloudflare:workers" in the workerd test suites.
type WorkerEnv = import("../../worker/env.ts").Env;
type WorkerModule = typeof import("../../worker/index.ts");

declare namespace Cloudflare {
  interface Env extends WorkerEnv {
    readonly SWITCHYARD: KVNamespace;
  }
  interface GlobalProps {
    mainModule: WorkerModule;
  }
}
