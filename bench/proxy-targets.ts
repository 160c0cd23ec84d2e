// The targets of `npm run bench:proxy` (scripts/bench-proxy.ts) and what it asks of them: wrk's
// figures, a first answer, a sticky cookie, a full garbage collection of a workerd isolate.
import { request } from "node:http";
import { inspectorSession, runWrk } from "./bare-workerd.ts";

export interface Target {
  label: string;
  /** Key in the JSON output. */
  key: string;
  port: number;
  host: string;
  headers?: Record<string, string>;
  /** The process whose CPU is counted; none for the backend itself. */
  pid?: number;
  /** A workerd target's inspector, for its garbage collections. */
  inspector?: string;
}

export const say = (line = "") => process.stderr.write(`${line}\n`);

function toMs(value: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(value.trim());
  if (!m) return Number.NaN;
  const n = Number(m[1]);
  return m[2] === "us" ? n / 1000 : m[2] === "s" ? n * 1000 : n;
}

/** wrk on the load core, its report read into figures. */
export async function wrk(
  target: Target,
  seconds: number,
  /** A wrk script whose delay() paces each connection, and how many connections. */
  paced?: { script: string; connections: number },
): Promise<{
  rps: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  requests: number;
  errors: number;
}> {
  const out = await runWrk(target, seconds, paced ?? {});
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  const p50 = /^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? "";
  const p99 = /^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? "";
  const max = /^\s+Latency\s+\S+\s+\S+\s+(\S+)/m.exec(out)?.[1] ?? "";
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = non2xx + (socket ? socket.slice(1).reduce((n, x) => n + Number(x), 0) : 0);
  if (errors > 0 && process.env.BENCH_VERBOSE) say(out);
  return { rps, p50Ms: toMs(p50), p99Ms: toMs(p99), maxMs: toMs(max), requests, errors };
}

/** Resolves with the first answer to a routed request. */
export function firstAnswer(
  port: number,
  host: string,
  headers: Record<string, string> = {},
): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port, path: "/bench", headers: { ...headers, host } },
      (res) => {
        res.resume();
        res.on("end", () => resolve());
      },
    );
    req.on("error", reject);
    req.end();
  });
}

/**
 * A full garbage collection of a workerd target's isolate, through its inspector; the ms from
 * asking to done. workerd runs it when the isolate next takes a request, so requests are sent
 * (one at a time) until it has.
 */
export async function collectGarbage(target: Target): Promise<number> {
  const session = await inspectorSession(target.inspector as string);
  try {
    let done = false;
    const started = performance.now();
    const collected = session.send("HeapProfiler.collectGarbage").then(() => {
      done = true;
    });
    for (let poked = 0; !done && poked < 200; poked++) {
      await firstAnswer(target.port, target.host, target.headers);
    }
    await collected;
    return performance.now() - started;
  } finally {
    session.close();
  }
}

/** The first answer's Set-Cookie of a sticky rule, as a Cookie header. */
export function stickyCookie(port: number, host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path: "/bench", headers: { host } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () => {
        const line = res.headers["set-cookie"]?.[0];
        if (line) resolve(line.split(";")[0] as string);
        else reject(new Error(`the sticky rule set no cookie: ${res.statusCode} ${body}`));
      });
    });
    req.on("error", reject);
    req.end();
  });
}
