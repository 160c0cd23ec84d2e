import { wrangler } from "./wrangler.ts";

/**
 * KV as the CLI reaches it: through wrangler, so that `--local` reads and writes the same
 * Miniflare state that `npm start` serves (.wrangler/state), and `--env NAME` the namespace bound
 * in that wrangler environment, with wrangler's own Cloudflare login.
 */

export interface Target {
  local: boolean;
  env: string | undefined;
}

function flags(target: Target): string[] {
  const out = ["--binding", "SWITCHYARD"];
  if (target.local)
    out.push("--local", "--persist-to", process.env.SWITCHYARD_STATE_DIR ?? ".wrangler/state");
  else out.push("--remote");
  if (target.env) out.push("--env", target.env);
  return out;
}

export async function kvGet(target: Target, key: string): Promise<string | undefined> {
  const keys = await kvList(target, key);
  if (!keys.some((k) => k.name === key)) return undefined;
  return wrangler(["kv", "key", "get", key, "--text", ...flags(target)]);
}

export async function kvPut(target: Target, key: string, value: string): Promise<void> {
  await wrangler(["kv", "key", "put", key, value, ...flags(target)]);
}

export async function kvList(
  target: Target,
  prefix: string,
): Promise<{ name: string; metadata?: unknown }[]> {
  return JSON.parse(
    await wrangler(["kv", "key", "list", "--prefix", prefix, ...flags(target)]),
  ) as { name: string; metadata?: unknown }[];
}
