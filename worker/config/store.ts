import {
  formatProblem,
  KV_BULK_GET_MAX_KEYS,
  parsePoolText,
  parseRoutesText,
  poolKey,
  ROUTES_KEY,
} from "../../contract/index.ts";
import { type CompiledPoolDocument, compilePoolDocument } from "../core/compiled-pool.ts";
import { stableHash } from "../core/hash.ts";
import { compileSnapshot, kvPoolNames, type Snapshot } from "../core/snapshot.ts";
import type { Logger } from "../log.ts";

/**
 * The one place the worker reads KV. It holds the compiled snapshot in isolate memory: the
 * first request loads it (the `routes` key, then one bulk get per 100 pools, in parallel), later
 * requests are served from memory and start a background refresh every `refreshMs`. A document
 * that is missing, unreadable or invalid is never applied; the last good one keeps serving.
 */

/** KV's shortest edge cache; a shorter cacheTtl is refused. */
const KV_CACHE_TTL_SECONDS = 30;
/** With no snapshot, a failed load is retried at most this often, not on every request. */
const COLD_RETRY_MS = 1_000;

export interface StoreOptions {
  kv: KVNamespace;
  refreshMs: number;
  now: () => number;
  log: Logger;
  /** Local development: IP-literal endpoint URLs are expected and not flagged. */
  local: boolean;
  /** ALLOWED_BINDINGS, for the snapshot's warnings. */
  allowedBindings?: ReadonlySet<string>;
}

export interface LoadError {
  message: string;
  at: number;
}

/** A pool document that was valid: the hash of its text and what it compiled to. */
interface GoodPool {
  hash: string;
  spec: CompiledPoolDocument;
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

class LoadFailure extends Error {}

/** Generations kept in the history the dashboard shows. */
export const GENERATIONS_KEPT = 20;

export class ConfigStore {
  snapshot: Snapshot | undefined;
  /** When the snapshot in use was built or last confirmed unchanged. */
  checkedAt = 0;
  /** When the snapshot in use was built. */
  loadedAt = 0;
  /** The snapshots this isolate has loaded, oldest first (at most GENERATIONS_KEPT). */
  readonly history: { generation: string; loadedAt: number; routes: number; pools: number }[] = [];
  lastError: LoadError | undefined;
  private attemptedAt = Number.NEGATIVE_INFINITY;
  private inFlight: Promise<void> | undefined;
  /**
   * The last good version of each pool: an invalid write keeps the previous one serving, and an
   * unchanged text is not parsed again.
   */
  private readonly goodPools = new Map<string, GoodPool>();
  /** Problems of the previous load: one that persists is logged once, not on every refresh. */
  private reported = new Set<string>();
  private reporting = new Set<string>();
  private readonly options: StoreOptions;

  constructor(options: StoreOptions) {
    this.options = options;
  }

  /**
   * The snapshot to serve this request with. Waits on KV only when there is none yet;
   * otherwise schedules a refresh with `waitUntil` when one is due.
   */
  async current(waitUntil: (promise: Promise<unknown>) => void): Promise<Snapshot | undefined> {
    const now = this.options.now();
    if (this.snapshot) {
      if (now - this.attemptedAt >= this.options.refreshMs) waitUntil(this.refresh());
      return this.snapshot;
    }
    if (this.inFlight || now - this.attemptedAt >= COLD_RETRY_MS) await this.refresh();
    return this.snapshot;
  }

  /** Reads KV and swaps in a new snapshot if anything changed; never throws. */
  refresh(): Promise<void> {
    this.inFlight ??= this.load().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async load(): Promise<void> {
    const { kv, now, log } = this.options;
    this.attemptedAt = now();
    this.reporting = new Set();
    try {
      const routesText = await kv.get(ROUTES_KEY, { type: "text", cacheTtl: KV_CACHE_TTL_SECONDS });
      if (routesText === null)
        throw new LoadFailure(`the routes document is missing: no KV key "${ROUTES_KEY}"`);
      const routes = parseRoutesText(routesText);
      if (!routes.ok) {
        throw new LoadFailure(
          `the routes document is invalid: ${routes.problems.map(formatProblem).join("; ")}`,
        );
      }
      const names = kvPoolNames(routes.value);
      const texts = await this.readPools(names);
      const kvPools = new Map<string, CompiledPoolDocument | null>();
      const generationParts = [stableHash(routesText)];
      for (const name of names) {
        const pool = this.acceptPool(name, texts.get(poolKey(name)) ?? null);
        kvPools.set(name, pool?.spec ?? null);
        generationParts.push(`${name}=${pool?.hash ?? ""}`);
      }
      const generation = stableHash(generationParts.join("\n"));
      if (generation !== this.snapshot?.generation) {
        const snapshot = compileSnapshot({
          generation,
          routes: routes.value,
          kvPools,
          local: this.options.local,
          allowedBindings: this.options.allowedBindings,
        });
        for (const warning of snapshot.warnings) log.warn(warning, { generation });
        this.snapshot = snapshot;
        this.loadedAt = now();
        this.history.push({
          generation,
          loadedAt: this.loadedAt,
          routes: routes.value.routes.length,
          pools: snapshot.specs.size,
        });
        if (this.history.length > GENERATIONS_KEPT) this.history.shift();
        log.info("snapshot loaded", {
          generation,
          routes: routes.value.routes.length,
          pools: snapshot.specs.size,
        });
      }
      this.checkedAt = now();
      this.lastError = undefined;
    } catch (error) {
      const message =
        error instanceof LoadFailure
          ? error.message
          : `reading KV failed: ${(error as Error).message}`;
      this.lastError = { message, at: now() };
      this.report(message, { serving: this.snapshot?.generation ?? null });
    }
    this.reported = this.reporting;
  }

  private async readPools(names: string[]): Promise<Map<string, string | null>> {
    const maps = await Promise.all(
      chunks(names.map(poolKey), KV_BULK_GET_MAX_KEYS).map((keys) =>
        this.options.kv.get(keys, { type: "text", cacheTtl: KV_CACHE_TTL_SECONDS }),
      ),
    );
    return new Map(maps.flatMap((map) => [...map]));
  }

  /** The pool to use: this text if valid, else the last good one, else none. */
  private acceptPool(name: string, text: string | null): GoodPool | undefined {
    if (text === null) {
      this.goodPools.delete(name);
      return undefined;
    }
    const hash = stableHash(text);
    const previous = this.goodPools.get(name);
    if (previous?.hash === hash) return previous;
    const parsed = parsePoolText(text);
    if (parsed.ok) {
      const good = { hash, spec: compilePoolDocument(name, parsed.value, "kv") };
      this.goodPools.set(name, good);
      return good;
    }
    const problems = parsed.problems.map(formatProblem).join("; ");
    this.report(`pool document pool:${name} is invalid: ${problems}`, {
      using: previous ? "its last good version" : "nothing: its share answers 500",
    });
    return previous;
  }

  /** Logs a problem unless the previous load already reported it. */
  private report(message: string, fields: Record<string, unknown>): void {
    this.reporting.add(message);
    if (!this.reported.has(message)) this.options.log.error(message, fields);
  }
}
