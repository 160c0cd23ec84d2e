// Shared by the bare-workerd benchmarks: bundling a worker as wrangler would, a workerd config
// for a set of workers each on its own loopback port, and waiting for a port to answer.
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, request } from "node:http";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { build, type Plugin } from "esbuild";
import type * as Ws from "ws";
import {
  compileRoutes,
  layoutEntries,
  parseRoutesDocument,
  shardCountFor,
} from "../contract/index.ts";
import { freeLoopbackPort, listenOnLoopback } from "../local/listen.ts";
import { endpointId } from "../worker/core/hash.ts";
import {
  endpointRef,
  importStickyKey,
  sessionSettings,
  signSticky,
} from "../worker/sticky/cookie.ts";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));
const { WebSocket } = createRequire(import.meta.url)("ws") as typeof Ws;
/** The core the measured proxy runs on, and the one for wrk, the backends and the script. */
export const PROXY_CORE = "0";
export const LOAD_CORE = "1";
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

/** A change to one source file, made only in a bundle: `from`, found once in `file`, becomes `to`. */
export interface SourceEdit {
  /** Relative to the repository. */
  file: string;
  from: string;
  to: string;
}

/**
 * An esbuild plugin that bundles `edits` into the files they name, leaving the files as they
 * are. Throws when an edit's text is not in its file exactly once, so that an edit the code has
 * outgrown fails instead of measuring the unchanged code.
 */
function editing(edits: readonly SourceEdit[]): Plugin {
  const byFile = Map.groupBy(edits, (e) => join(ROOT, e.file));
  return {
    name: "source-edits",
    setup(build) {
      build.onLoad({ filter: /\.ts$/ }, async (args) => {
        const fileEdits = byFile.get(args.path);
        if (fileEdits === undefined) return undefined;
        let text = await readFile(args.path, "utf8");
        for (const edit of fileEdits) {
          const at = text.indexOf(edit.from);
          if (at === -1 || text.indexOf(edit.from, at + 1) !== -1)
            throw new Error(
              `${edit.file}: the text to edit is not there exactly once: ${edit.from}`,
            );
          text = text.slice(0, at) + edit.to + text.slice(at + edit.from.length);
        }
        return { contents: text, loader: "ts" };
      });
    },
  };
}

/**
 * Bundles a worker entry (ESM, workerd conditions) into `outfile`, with `edits` made to its
 * sources in the bundle only (the ablations of bench:instructions).
 */
export async function bundle(
  entry: string,
  outfile: string,
  edits: readonly SourceEdit[] = [],
): Promise<void> {
  const result = await build({
    entryPoints: [join(ROOT, entry)],
    outfile,
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2024",
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["module", "main"],
    logLevel: "error",
    // Metafile paths are relative to it, as the edits' are.
    absWorkingDir: ROOT,
    metafile: edits.length > 0,
    plugins: edits.length > 0 ? [editing(edits)] : [],
  });
  for (const edit of edits)
    if (!result.metafile?.inputs[edit.file])
      throw new Error(`${edit.file} is not part of ${entry}: its edit would change nothing`);
}

/** Files of today's bench entries besides the entry itself, copied with it (bundleAtCommit). */
const ENTRY_SUPPORT = ["worker/config/memory-kv.ts"];

/**
 * The edits that take the warm-up (worker/warm.ts) out of the bench entry `file`: for the cold
 * starts of bench:proxy without it, and for a baseline commit that has none.
 */
export function withoutWarmUp(file = "bench/workerd/switchyard-entry.ts"): SourceEdit[] {
  return [
    { file, from: 'import { startWarmUp } from "../../worker/warm.ts";\n', to: "" },
    { file, from: "startWarmUp();", to: "" },
  ];
}

/**
 * Bundles the bench entry `entry` as it was at `commit` (its worker, contract and bench files,
 * unpacked inside the repository so that their imports resolve to this node_modules). With
 * `currentEntry`, the entry file itself is today's (with ENTRY_SUPPORT), so that only the
 * worker differs; at a commit without worker/warm.ts, without the warm-up. Throws when the
 * clone has no such commit.
 */
export async function bundleAtCommit(
  commit: string,
  entry: string,
  outfile: string,
  options: { currentEntry?: boolean } = {},
): Promise<void> {
  const dir = join(ROOT, ".bench-baseline");
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  try {
    execFileSync("sh", ["-c", `git archive ${commit} worker contract bench | tar -x -C ${dir}`], {
      cwd: ROOT,
      stdio: ["ignore", "ignore", "pipe"],
    });
    const edits: SourceEdit[] = [];
    if (options.currentEntry) {
      for (const file of [entry, ...ENTRY_SUPPORT])
        await copyFile(join(ROOT, file), join(dir, file));
      if (!existsSync(join(dir, "worker/warm.ts")))
        edits.push(...withoutWarmUp(join(".bench-baseline", entry)));
    }
    await bundle(join(".bench-baseline", entry), outfile, edits);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A workerd config serving each worker on 127.0.0.1:port, with loopback allowed outbound. */
export function workerdConfig(
  services: WorkerService[],
  /** V8 flags for every isolate (`--trace-gc-nvp` for bench:gc). */
  options: { v8Flags?: string[] } = {},
): string {
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
  ],${options.v8Flags ? `\n  v8Flags = [${options.v8Flags.map((f) => JSON.stringify(f)).join(", ")}],` : ""}
  sockets = [${sockets.join(", ")}]
);
`;
}

/**
 * `workerd serve` of a config written by workerdConfig: pinned to `core` when given (the
 * process's PID is workerd's own, as taskset and stdbuf exec it), with its inspector on
 * `inspectorPort`, and its stdout piped when asked for (V8's traces go there). A piped stdout
 * is line-buffered (`stdbuf -oL`): into a pipe workerd writes 4 KB at a time, so a trace line
 * came seconds after its collection, outside the window being measured, and the last ones were
 * lost when the process was stopped.
 */
export function startWorkerd(
  config: string,
  options: { core?: string; inspectorPort?: number; stdout?: "pipe" | "ignore" } = {},
): ChildProcess {
  const args = [WORKERD_BINARY, "serve", config, "--experimental"];
  if (options.stdout === "pipe") args.unshift("stdbuf", "-oL");
  if (options.inspectorPort !== undefined)
    args.push(`--inspector-addr=127.0.0.1:${options.inspectorPort}`);
  const [command, ...rest] =
    options.core === undefined ? args : ["taskset", "-c", options.core, ...args];
  return spawn(command as string, rest, {
    stdio: ["ignore", options.stdout ?? "ignore", "ignore"],
  });
}

/**
 * `entry` bundled and served alone by `workerd serve` on `service.port`, in a directory of its
 * own, until `stop()` (for the node tests that run a worker where production runs it).
 */
export async function serveBundle(
  entry: string,
  service: Omit<WorkerService, "entry">,
): Promise<{ stop(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `switchyard-${service.name}-`));
  let child: ChildProcess | undefined;
  const stop = async () => {
    if (child) await stopWorkerd(child);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await bundle(entry, join(dir, "worker.js"));
    await writeFile(join(dir, "worker.capnp"), workerdConfig([{ ...service, entry: "worker.js" }]));
    child = startWorkerd(join(dir, "worker.capnp"));
    await waitForPort(service.port);
    return { stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * The real app (the bench entry, its KV in memory) serving `routes` alone in bare `workerd serve`
 * on a free loopback port, until `stop()`: what a client meets on the wire, for the node tests.
 */
export async function serveSwitchyard(
  name: string,
  routes: unknown,
): Promise<{ port: number; stop(): Promise<void> }> {
  const port = await freeLoopbackPort();
  const { stop } = await serveBundle("bench/workerd/switchyard-entry.ts", {
    name,
    port,
    bindings: { KV_JSON: JSON.stringify({ routes: JSON.stringify(routes) }) },
  });
  return { port, stop };
}

/** Stops a process started by startWorkerd and waits for it to exit. */
export async function stopWorkerd(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  await once(child, "exit");
}

/** Moves this process (and the backends it serves) to the load core, off the proxy's. */
export function pinToLoadCore(): void {
  execFileSync("taskset", ["-pc", LOAD_CORE, String(process.pid)], { stdio: "ignore" });
}

/** What wrk is pointed at: a port on loopback, the Host it sends, a path and more headers. */
export interface WrkTarget {
  port: number;
  host: string;
  /** Default `/bench`. */
  path?: string;
  headers?: Record<string, string>;
}

/**
 * wrk (`-t1`, keep-alive, `--latency`) on the load core for `seconds`, with 32 connections unless
 * told otherwise and an optional Lua script; its report as text. Asynchronous, since the
 * backends live in the caller's event loop.
 */
export async function runWrk(
  target: WrkTarget,
  seconds: number,
  options: { connections?: number; script?: string } = {},
): Promise<string> {
  // wrk replaces its own Host header only when given one spelled "Host".
  const headers = Object.entries({ Host: target.host, ...target.headers }).flatMap(([k, v]) => [
    "-H",
    `${k}: ${v}`,
  ]);
  const { stdout } = await run("taskset", [
    "-c",
    LOAD_CORE,
    "wrk",
    "-t1",
    `-c${options.connections ?? 32}`,
    ...(options.script ? ["-s", options.script] : []),
    `-d${seconds}s`,
    "--latency",
    ...headers,
    `http://127.0.0.1:${target.port}${target.path ?? "/bench"}`,
  ]);
  return stdout;
}

/** The promise's value, or an error naming what did not answer within 20 s. */
export function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what}: no answer in 20 s (did workerd end the isolate?)`)),
      20_000,
    );
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/**
 * A Chrome DevTools Protocol session with workerd's inspector (`--inspector-addr`, the
 * service's name as the path): `send` a method and wait, at most 20 s, for its answer.
 */
export async function inspectorSession(url: string): Promise<{
  send(method: string, params?: Record<string, unknown>): Promise<unknown>;
  close(): void;
}> {
  const socket = new WebSocket(url);
  await new Promise((resolve, reject) => {
    socket.once("open", resolve);
    socket.once("error", reject);
  });
  let id = 0;
  const waiting = new Map<number, (result: unknown) => void>();
  socket.on("message", (data) => {
    const message = JSON.parse(data.toString()) as { id?: number; result?: unknown };
    if (message.id !== undefined) waiting.get(message.id)?.(message.result);
  });
  return {
    send: (method, params = {}) =>
      within(
        new Promise<unknown>((resolve) => {
          waiting.set(++id, resolve);
          socket.send(JSON.stringify({ id, method, params }));
        }),
        method,
      ),
    close: () => socket.close(),
  };
}

/** Resolves once something answers HTTP on the port (any status). */
export async function waitForPort(
  port: number,
  host = "127.0.0.1",
  path = "/",
  /** How many times to try, 5 ms apart (a process under valgrind needs many). */
  attempts = 400,
): Promise<void> {
  for (let i = 0; i < attempts; i++) {
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

/** One worker measured by measureCpu: its bundle next to `dir`, its bindings, what wrk sends. */
export interface CpuVariant {
  label: string;
  entry: string;
  bindings: Record<string, string>;
  /** Request headers besides `Host: x.test`. */
  headers?: Record<string, string>;
  /** Path wrk asks for; default "/bench". */
  path?: string;
}

export interface CpuFigures {
  label: string;
  /** CPU µs per request, one per round. */
  cpu: number[];
  /** Requests per second, one per round. */
  rps: number[];
}

const run = promisify(execFile);

/**
 * Each variant in its own `workerd serve` pinned to core 0, wrk (-c32) pinned to core 1, rounds
 * alternating between the variants after a warm-up; CPU read from /proc. The caller runs on
 * core 1 with the backends. Throws if a variant answers anything but 2xx.
 */
export async function measureCpu(
  dir: string,
  variants: CpuVariant[],
  options: { rounds: number; seconds: number; firstPort: number },
): Promise<CpuFigures[]> {
  const children: ChildProcess[] = [];
  try {
    const procs: (CpuVariant & { port: number; pid: number })[] = [];
    let port = options.firstPort;
    for (const [i, v] of variants.entries()) {
      const config = join(dir, `v${i}.capnp`);
      await writeFile(
        config,
        workerdConfig([{ name: `v${i}`, port, entry: v.entry, bindings: v.bindings }]),
      );
      const child = startWorkerd(config, { core: PROXY_CORE });
      children.push(child);
      await waitForPort(port);
      procs.push({ ...v, port, pid: child.pid as number });
      port++;
    }
    const wrk = (p: (typeof procs)[number], seconds: number) =>
      runWrk({ port: p.port, host: "x.test", path: p.path, headers: p.headers }, seconds);
    for (const p of procs) await wrk(p, 2);
    const figures = procs.map((p) => ({
      label: p.label,
      cpu: [] as number[],
      rps: [] as number[],
    }));
    for (let r = 0; r < options.rounds; r++) {
      for (const [i, p] of procs.entries()) {
        const before = await cpuSeconds(p.pid);
        const stdout = await wrk(p, options.seconds);
        if (/Non-2xx/.test(stdout)) throw new Error(`${p.label} answered errors`);
        const requests = Number(/(\d+) requests in/.exec(stdout)?.[1]);
        const figure = figures[i] as CpuFigures;
        figure.cpu.push((((await cpuSeconds(p.pid)) - before) * 1e6) / requests);
        figure.rps.push(Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]));
      }
    }
    return figures;
  } finally {
    await Promise.all(children.map(stopWorkerd));
  }
}

export function median(xs: readonly number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
}

/** The sticky secret of the benchmarks' sticky rules. */
export const BENCH_STICKY_SECRET = "bench-sticky-secret-of-more-than-32-characters";
/**
 * The benchmarks' sessionPersistence: an absolute timeout only, so that a cookie made once holds
 * for a whole run and is never re-sent (an idle timeout re-sends it after a minute).
 */
export const BENCH_PERSISTENCE = { absoluteTimeout: "24h" };

/**
 * The Cookie header a browser sends back after the first answer of the sticky rule "web" of
 * route "bench", pointing at the endpoint `url`: signed here with the benchmarks' secret.
 */
export async function benchStickyCookie(url: string): Promise<string> {
  const { cookieName, scope } = sessionSettings(BENCH_PERSISTENCE, "bench", "web");
  const key = await importStickyKey(BENCH_STICKY_SECRET);
  const nowS = Math.floor(Date.now() / 1000);
  const value = await signSticky(
    { endpointRef: await endpointRef(key, endpointId(url)), issuedAt: nowS, lastSeen: nowS },
    scope,
    key,
  );
  return `${cookieName}=${value}`;
}

/**
 * CPU time of a process's main thread so far (/proc/PID/task/PID/schedstat), in milliseconds,
 * to the nanosecond: where `workerd serve` runs its isolates, without the helper threads (V8's
 * background compiling and garbage collection), so a single request's CPU can be read.
 */
export async function mainThreadCpuMs(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/task/${pid}/schedstat`, "utf8");
  return Number(text.split(" ")[0]) / 1e6;
}

/** The KV texts (and the `routes` key's metadata) of a routes document, as `switchyard push` writes them. */
export function compiledKv(input: unknown): {
  entries: Record<string, string>;
  metadata: Record<string, unknown>;
} {
  const parsed = parseRoutesDocument(input);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems.slice(0, 3)));
  const text = JSON.stringify(input);
  const layout = compileRoutes(parsed.value, "bench", shardCountFor(text.length));
  const entries: Record<string, string> = { routes: text };
  for (const { key, value } of layoutEntries(layout)) entries[key] = value;
  return { entries, metadata: { routes: layout.metadata } };
}
