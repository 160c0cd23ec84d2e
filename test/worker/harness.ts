import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { inject } from "vitest";
import { createApp } from "../../worker/app.ts";
import type { Logger } from "../../worker/config/log.ts";
import { ConfigStore } from "../../worker/config/store.ts";

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

export function backends(): Record<"a" | "b" | "c" | "closed", string> {
  return inject("backends") as Record<"a" | "b" | "c" | "closed", string>;
}

export async function putRoutes(doc: unknown): Promise<void> {
  await env.SWITCHYARD.put("routes", typeof doc === "string" ? doc : JSON.stringify(doc));
}

export async function putPool(name: string, doc: unknown): Promise<void> {
  await env.SWITCHYARD.put(`pool:${name}`, typeof doc === "string" ? doc : JSON.stringify(doc));
}

export function harness(options: { refreshSeconds?: number } = {}) {
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
      if (property !== "get" || typeof value !== "function") return value;
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
  const app = createApp({ store: () => store, now: () => now, log });

  return {
    store,
    logs,
    get kvReads() {
      return kvReads;
    },
    advance(ms: number) {
      now += ms;
    },
    async fetch(input: string, init?: RequestInit): Promise<Response> {
      const ctx = createExecutionContext();
      const response = await app.fetch(new Request(input, init), { ...env, SWITCHYARD: kv }, ctx);
      await waitOnExecutionContext(ctx);
      return response;
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
