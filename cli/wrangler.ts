// Runs wrangler offline and quiet, as its own node process so that stopping it stops workerd.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));
const WRANGLER = fileURLToPath(
  new URL("../node_modules/wrangler/bin/wrangler.js", import.meta.url),
);

export const OFFLINE_ENV = {
  ...process.env,
  WRANGLER_SEND_METRICS: "false",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  WRANGLER_HIDE_BANNER: "true",
};

/** Runs one wrangler command to completion and returns its stdout. */
export function wrangler(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [WRANGLER, ...args],
      { cwd: ROOT, env: OFFLINE_ENV, maxBuffer: 64 << 20 },
      (error, stdout, stderr) => {
        if (error)
          reject(
            new Error(`wrangler ${args.slice(0, 3).join(" ")} failed: ${stderr || error.message}`),
          );
        else resolve(stdout);
      },
    );
  });
}

/** Starts a long-running wrangler command (e.g. dev); the caller stops it with SIGTERM. */
function spawnWrangler(args: string[]): ChildProcess {
  return spawn(process.execPath, [WRANGLER, ...args], {
    cwd: ROOT,
    env: OFFLINE_ENV,
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/** `wrangler dev` on loopback with local, persisted KV and these vars (local mode and debug headers on). */
export function spawnWranglerDev(options: {
  port: number;
  persistTo: string;
  vars: Record<string, string>;
}): ChildProcess {
  const vars = Object.entries({
    SWITCHYARD_LOCAL: "true",
    DEBUG_HEADERS: "true",
    ...options.vars,
  }).flatMap(([name, value]) => ["--var", `${name}:${value}`]);
  return spawnWrangler([
    "dev",
    "--local",
    "--persist-to",
    options.persistTo,
    "--ip",
    "127.0.0.1",
    "--port",
    String(options.port),
    ...vars,
  ]);
}

/** The id of the SWITCHYARD KV namespace in wrangler.toml: the one local KV state is kept under. */
export async function kvNamespaceId(): Promise<string> {
  const toml = await readFile(join(ROOT, "wrangler.toml"), "utf8");
  const id = /binding\s*=\s*"SWITCHYARD"\s*\n\s*(?:#.*\n\s*)*id\s*=\s*"([^"]+)"/.exec(toml)?.[1];
  if (!id)
    throw new Error("wrangler.toml has no kv_namespaces entry with binding SWITCHYARD and an id");
  return id;
}
