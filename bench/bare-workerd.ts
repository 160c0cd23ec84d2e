// Shared by the bare-workerd benchmarks: bundling a worker as wrangler would, a workerd config
// for a set of workers each on its own loopback port, and waiting for a port to answer.
import { execFileSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { createServer, request } from "node:http";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { listenOnLoopback } from "../local/listen.ts";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** The workerd binary itself (not its Node launcher), so that its PID is the process measured. */
export const WORKERD_BINARY = createRequire(import.meta.url).resolve(
  "@cloudflare/workerd-linux-64/bin/workerd",
);
const TICKS_PER_SECOND = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim());

export interface WorkerService {
  name: string;
  port: number;
  /** The bundle's file name, next to the config. */
  entry: string;
  bindings: Record<string, string>;
}

/** Bundles a worker entry (ESM, workerd conditions) into `outfile`. */
export async function bundle(entry: string, outfile: string): Promise<void> {
  await build({
    entryPoints: [join(ROOT, entry)],
    outfile,
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2024",
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["module", "main"],
    logLevel: "error",
  });
}

/** A workerd config serving each worker on 127.0.0.1:port, with loopback allowed outbound. */
export function workerdConfig(services: WorkerService[]): string {
  const workers = services.map(
    (s) => `(name = "${s.name}", worker = (
      modules = [(name = "worker", esModule = embed "${s.entry}")],
      compatibilityDate = "2026-11-01",
      bindings = [${Object.entries(s.bindings)
        .map(([name, value]) => `(name = "${name}", text = ${JSON.stringify(value)})`)
        .join(", ")}],
      globalOutbound = "internet"))`,
  );
  const sockets = services.map(
    (s) =>
      `(name = "${s.name}", address = "127.0.0.1:${s.port}", http = (), service = "${s.name}")`,
  );
  return `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    ${workers.join(",\n    ")},
    (name = "internet", network = (allow = ["public", "private", "local"]))
  ],
  sockets = [${sockets.join(", ")}]
);
`;
}

/** Resolves once something answers HTTP on the port (any status). */
export async function waitForPort(port: number, host = "127.0.0.1", path = "/"): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const req = request({ host, port, path, method: "GET" }, (res) => {
        res.resume();
        resolve(true);
      });
      req.on("error", () => resolve(false));
      req.end();
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`nothing answered on ${host}:${port}`);
}

/** CPU time a process has used so far (user + system, from /proc/PID/stat), in seconds. */
export async function cpuSeconds(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/stat`, "utf8");
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND; // utime, stime
}

/** `count` backends on loopback answering a small JSON body, served from this process. */
export async function startBenchBackends(count: number) {
  const body = JSON.stringify({ ok: true, backend: "bench" });
  return Promise.all(
    Array.from({ length: count }, async () => {
      const server = createServer((_req, res) => {
        res.writeHead(200, { "content-type": "application/json", "content-length": body.length });
        res.end(body);
      });
      server.keepAliveTimeout = 60_000;
      const { port, close } = await listenOnLoopback(server);
      return { url: `http://127.0.0.1:${port}`, port, close };
    }),
  );
}
