// `npm run types`: generates worker/env.generated.d.ts (the worker's Env) with `wrangler types`
// from wrangler.toml and the secret names in worker/secrets.env. `npm run types:check` (part of
// `npm test`) fails when that file is stale, as the JSON Schema check does for schema/.
import { wrangler } from "../cli/wrangler.ts";

const args = [
  "types",
  "worker/env.generated.d.ts",
  "--include-runtime=false",
  "--strict-vars=false",
  "--env-file",
  "worker/secrets.env",
  ...(process.argv.includes("--check") ? ["--check"] : []),
];
try {
  process.stdout.write(await wrangler(args));
} catch (error) {
  process.stderr.write(
    `${(error as Error).message}\nworker/env.generated.d.ts is stale: run \`npm run types\` and commit it.\n`,
  );
  process.exit(1);
}
