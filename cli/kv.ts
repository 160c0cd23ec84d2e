import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
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

/**
 * Runs `use` with a file holding `text` in a directory of its own, removed afterwards: a value
 * goes to wrangler as a file, since one argument may not exceed 128 KiB on Linux.
 */
async function withFile<T>(text: string, use: (path: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "switchyard-kv-"));
  try {
    const path = join(dir, "value");
    await writeFile(path, text);
    return await use(path);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function kvPut(
  target: Target,
  key: string,
  value: string,
  metadata?: unknown,
): Promise<void> {
  const extra = metadata === undefined ? [] : ["--metadata", JSON.stringify(metadata)];
  await withFile(value, (path) =>
    wrangler(["kv", "key", "put", key, "--path", path, ...extra, ...flags(target)]),
  );
}

/** Writes many keys in one request (`wrangler kv bulk put`). */
export async function kvBulkPut(
  target: Target,
  entries: { key: string; value: string }[],
): Promise<void> {
  if (entries.length === 0) return;
  await withFile(JSON.stringify(entries), (path) =>
    wrangler(["kv", "bulk", "put", path, ...flags(target)]),
  );
}

/** Deletes many keys in one request (`wrangler kv bulk delete`). */
export async function kvBulkDelete(target: Target, keys: string[]): Promise<void> {
  if (keys.length === 0) return;
  await withFile(JSON.stringify(keys), (path) =>
    wrangler(["kv", "bulk", "delete", path, "--force", ...flags(target)]),
  );
}

export async function kvList(
  target: Target,
  prefix: string,
): Promise<{ name: string; metadata?: unknown }[]> {
  return JSON.parse(
    await wrangler(["kv", "key", "list", "--prefix", prefix, ...flags(target)]),
  ) as { name: string; metadata?: unknown }[];
}
