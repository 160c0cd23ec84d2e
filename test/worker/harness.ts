import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { inject } from "vitest";
import {
  type CompiledLayout,
  compileRoutes,
  layoutEntries,
  parseRoutesDocument,
} from "../../contract/index.ts";
import type { Echo, FAILING_BEHAVIORS } from "../../local/backends.ts";
import { createApp } from "../../worker/app.ts";
import { ConfigStore } from "../../worker/config/store.ts";
import { HealthRegistry } from "../../worker/core/health.ts";
import { RetryBudgets } from "../../worker/core/retry-policy.ts";
import type { Logger } from "../../worker/log.ts";
import { BufferBudget } from "../../worker/proxy/body.ts";

/**
 * The worker with its own config store, a clock the test moves, captured logs and a count of
 * KV reads. Requests run through the real app in workerd and reach real loopback backends;
 * `fetch` waits for the request's background work (a refresh) before it returns.
 */

export interface LogLine {
  level: "info" | "warn" | "error";
  message: string;
  fields: Record<string, unknown> | undefined;
}

/** The backends backends.setup.ts starts: four that echo, a closed port, one per failing behavior. */
export type BackendName = "a" | "b" | "c" | "d" | "closed" | (typeof FAILING_BEHAVIORS)[number];

export function backends(): Record<BackendName, string> {
  return inject("backends") as Record<BackendName, string>;
}

/**
 * Sends one message over an open WebSocket, `waitFirst` ms after accepting it, and gives the
 * echo backend's reply.
 */
export async function webSocketRoundTrip(response: Response, waitFirst = 0): Promise<string> {
  const socket = response.webSocket;
  if (!socket) throw new Error(`no webSocket on the ${response.status} response`);
  socket.accept();
  if (waitFirst > 0) await scheduler.wait(waitFirst);
  const reply = new Promise<string>((resolve) =>
    socket.addEventListener("message", (event) => resolve(String(event.data))),
  );
  socket.send("hello");
  const text = await reply;
  socket.close(1000, "done");
  return text;
}

/** Requests a backend has seen so far (asked of the backend itself). */
export async function hits(url: string): Promise<number> {
  const response = await fetch(`${url}/__stats`);
  return ((await response.json()) as { hits: number }).hits;
}

/** The last request a backend received (asked of the backend itself). */
export async function lastRequest(url: string): Promise<Echo | null> {
  const response = await fetch(`${url}/__last`);
  return (await response.json()) as Echo | null;
}

export async function putRoutes(doc: unknown): Promise<void> {
  await env.SWITCHYARD.put("routes", typeof doc === "string" ? doc : JSON.stringify(doc));
}

/**
 * Writes a routes document as `switchyard push` does: its compiled layout in `shards` shards under
 * the id `id`, then the `routes` key naming it. Returns the layout.
 */
export async function putCompiled(
  doc: unknown,
  shards: number,
  id: string,
): Promise<CompiledLayout> {
  const parsed = parseRoutesDocument(doc);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  const layout = compileRoutes(parsed.value, id, shards);
  for (const { key, value } of layoutEntries(layout)) await env.SWITCHYARD.put(key, value);
  await env.SWITCHYARD.put("routes", JSON.stringify(doc), { metadata: layout.metadata });
  return layout;
}

export async function putPool(name: string, doc: unknown): Promise<void> {
  await env.SWITCHYARD.put(`pool:${name}`, typeof doc === "string" ? doc : JSON.stringify(doc));
}

export function harness(options: { refreshSeconds?: number; env?: Record<string, unknown> } = {}) {
  let now = 1_000_000;
  const logs: LogLine[] = [];
  const log: Logger = {
    info: (message, fields) => logs.push({ level: "info", message, fields }),
    warn: (message, fields) => logs.push({ level: "warn", message, fields }),
    error: (message, fields) => logs.push({ level: "error", message, fields }),
  };
  let kvReads = 0;
  const kv = new Proxy(env.SWITCHYARD, {
    get(target, property) {
      const value = Reflect.get(target, property, target);
      if ((property !== "get" && property !== "getWithMetadata") || typeof value !== "function")
        return value;
      return (...args: unknown[]) => {
        kvReads++;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  const store = new ConfigStore({
    kv,
    refreshMs: (options.refreshSeconds ?? 10) * 1000,
    now: () => now,
    log,
    local: true,
  });
  const state = {
    health: new HealthRegistry(),
    budgets: new RetryBudgets(),
    buffers: new BufferBudget(),
  };
  const app = createApp({ store: () => store, state, now: () => now, log, random: () => 0.5 });

  return {
    store,
    state,
    logs,
    get kvReads() {
      return kvReads;
    },
    advance(ms: number) {
      now += ms;
    },
    /** The harness's clock, in ms. */
    now: () => now,
    async fetch(input: string, init?: RequestInit): Promise<Response> {
      const ctx = createExecutionContext();
      const response = await app.fetch(
        new Request(input, init),
        { ...env, SWITCHYARD: kv, ...options.env },
        ctx,
      );
      await waitOnExecutionContext(ctx);
      return response;
    },
    /** The response as soon as the app returns it, and the request's background work apart. */
    async fetchAndBackground(
      input: string,
      init?: RequestInit,
    ): Promise<{ response: Response; background: Promise<void> }> {
      const ctx = createExecutionContext();
      const response = await app.fetch(
        new Request(input, init),
        { ...env, SWITCHYARD: kv, ...options.env },
        ctx,
      );
      return { response, background: waitOnExecutionContext(ctx) };
    },
    /** The `backend` field of the echo a request got back, or its status when it failed. */
    async backendOf(input: string, init?: RequestInit): Promise<string> {
      const response = await this.fetch(input, init);
      if (response.status !== 200) return String(response.status);
      return ((await response.json()) as { backend: string }).backend;
    },
  };
}

/** A routes document with one catch-all route over the given backendRefs and inline pools. */
export function catchAll(backendRefs: unknown[], pools: Record<string, unknown> = {}) {
  return { version: 1, routes: [{ name: "all", rules: [{ backendRefs }] }], pools };
}

export function pool(...urls: (string | { url: string; weight?: number; state?: string })[]) {
  return { endpoints: urls.map((u) => (typeof u === "string" ? { url: u } : u)) };
}

/** A cookie jar: keeps what Set-Cookie says and sends it back, as a browser would. */
export class CookieJar {
  readonly cookies = new Map<string, string>();
  readonly received: string[] = [];

  header(): Record<string, string> {
    if (this.cookies.size === 0) return {};
    return { cookie: [...this.cookies].map(([name, value]) => `${name}=${value}`).join("; ") };
  }

  take(response: Response): void {
    for (const line of response.headers.getSetCookie()) {
      this.received.push(line);
      const [pair] = line.split(";");
      const eq = (pair as string).indexOf("=");
      this.cookies.set((pair as string).slice(0, eq), (pair as string).slice(eq + 1));
    }
  }
}
