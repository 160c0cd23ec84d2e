import {
  type CompiledMetadata,
  compiledHeadKey,
  compiledMetadataOf,
  compiledShardKey,
  formatProblem,
  KV_BULK_GET_MAX_KEYS,
  MAX_SHARDS,
  parseCompiledHead,
  parseCompiledShard,
  parsePoolText,
  parseRoutesTextInSlices,
  poolKey,
  ROUTES_KEY,
  shardOf,
} from "../../contract/index.ts";
import { type CompiledPoolDocument, compilePoolDocument } from "../core/compiled-pool.ts";
import { CompiledRouteTable } from "../core/compiled-table.ts";
import { stableHash, TextHash } from "../core/hash.ts";
import { RouteTable, routeTableInSlices, type SnapshotRoutes } from "../core/route-table.ts";
import { compileSnapshot, kvPoolNames, type Snapshot } from "../core/snapshot.ts";
import type { Logger } from "../log.ts";

/**
 * The one place the worker reads KV. It holds the compiled snapshot in isolate memory: the
 * first request loads it (the `routes` key's metadata, the key itself, then one bulk get per
 * 100 pools, in parallel), later requests are served from memory and start a background
 * refresh every `refreshMs` (while the snapshot was read whole, one read of the key, text
 * and metadata together). A document that is missing, unreadable or invalid is never applied; the last good
 * one keeps serving.
 *
 * When the `routes` key's metadata names a compiled layout (written by `switchyard push`), the
 * store reads that instead of the document: its head, then a shard the first time a request
 * names one of its hostnames, each with the pools it names. A cold isolate then parses a few
 * kilobytes for its first request rather than the whole document (docs/kv-schema.md).
 */

/** KV's shortest edge cache; a shorter cacheTtl is refused. */
const KV_CACHE_TTL_SECONDS = 30;
/** How the store reads a text from KV: through KV's edge cache, for its shortest time. */
const CACHED_TEXT = { type: "text", cacheTtl: KV_CACHE_TTL_SECONDS } as const;
/** What a load or the admin API says when there is no routes key. */
const ROUTES_MISSING = `the routes document is missing: no KV key "${ROUTES_KEY}"`;
/** With no snapshot, a failed load is retried at most this often, not on every request. */
const COLD_RETRY_MS = 1_000;

/** The two reads the store makes of KV: Workers KV's namespace is one, an in-memory map another. */
export interface KvReader {
  get(key: string, options: { type: "text"; cacheTtl?: number }): Promise<string | null>;
  get(
    keys: string[],
    options: { type: "text"; cacheTtl?: number },
  ): Promise<Map<string, string | null>>;
  /** The `routes` key's metadata, its value left unread (a compiled layout needs no document). */
  getWithMetadata(
    key: string,
    options: { type: "stream"; cacheTtl?: number },
  ): Promise<{ value: ReadableStream | null; metadata: unknown }>;
  /** The `routes` key's metadata and text in one read (a document without a layout). */
  getWithMetadata(
    key: string,
    options: { type: "text"; cacheTtl?: number },
  ): Promise<{ value: string | null; metadata: unknown }>;
}

export interface StoreOptions {
  kv: KvReader;
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

/**
 * A routes text read from KV, recognised the next time by its length and hash: an invalid one
 * is not kept, and a refresh that reads it again fails the same way without parsing it. Two
 * different texts of one length share a 53-bit hash with odds of about one in 10^16.
 */
interface Seen {
  length: number;
  hash: string;
}

function same<S extends Seen>(seen: S | undefined, text: string, hash: string): seen is S {
  return seen !== undefined && seen.length === text.length && seen.hash === hash;
}

/**
 * A pool document that was valid: its text, kept so that a refresh recognises it by comparing
 * (natively, about 1 ms for the 6-9 MB of 1,000 pools of 100 endpoints, where hashing them in
 * JavaScript took 10-17 ms), its hash for the snapshot's generation, and what it compiled to.
 */
interface GoodPool {
  text: string;
  hash: string;
  spec: CompiledPoolDocument;
}

/**
 * The routes document last parsed, with its text. The routes text is the one text kept (7.4 MB
 * for 10,000 routes): a refresh compares the text it reads with it (`sameText`), which the
 * runtime does natively, without allocating, where hashing 7 MB in JavaScript depends on V8
 * keeping the hash loop optimized. When it does not (after a garbage collection cleared what
 * the optimized code embedded), the loop boxes two numbers a character, about 170 MB a refresh,
 * and requests waited behind 90 scavenges for 400 ms.
 */
interface ParsedRoutes extends Seen {
  table: RouteTable;
  text: string;
}

/** Characters hashed or compared between two yields of a refresh: about a millisecond of work. */
const HASH_SLICE_CHARS = 1 << 20;

/** A routes document this long takes long enough to load that requests are served between steps. */
const LARGE_DOCUMENT_CHARS = 256 * 1024;
/** A snapshot of this many routes takes long enough to build that requests are served first. */
const LARGE_DOCUMENT_ROUTES = 1_000;

/** Yields to the event loop, so that requests queued behind a long load step are served. */
function breathe(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/**
 * Walks `length` characters a slice of HASH_SLICE_CHARS at a time, waiting requests served
 * between slices, until `visit` returns false; true when it never did.
 */
async function everySlice(
  length: number,
  visit: (start: number, end: number) => boolean,
): Promise<boolean> {
  for (let start = 0; start < length; start += HASH_SLICE_CHARS) {
    if (start > 0) await breathe();
    if (!visit(start, Math.min(start + HASH_SLICE_CHARS, length))) return false;
  }
  return true;
}

/**
 * Whether two texts are the same, compared by the runtime a slice at a time (a slice is a view,
 * not a copy), with waiting requests served between the slices of a long one.
 */
async function sameText(a: string, b: string): Promise<boolean> {
  return (
    a.length === b.length &&
    (await everySlice(a.length, (start, end) => a.slice(start, end) === b.slice(start, end)))
  );
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
  private lastRoutes: ParsedRoutes | undefined;
  /** The whole document of the compiled layout in use, once the admin API asked for it. */
  private adminTable: { id: string; table: RouteTable } | undefined;
  /** Shards being read, by key: requests for hosts of one shard wait on one read. */
  private readonly shardsReading = new Map<string, Promise<string | undefined>>();
  private lastInvalidRoutes: (Seen & { message: string }) | undefined;
  /** Problems of the previous load: one that persists is logged once, not on every refresh. */
  private reported = new Set<string>();
  private reporting = new Set<string>();
  private readonly options: StoreOptions;

  constructor(options: StoreOptions) {
    this.options = options;
  }

  /**
   * The snapshot to serve this request with: at once (no promise) when there is one, and then a
   * refresh is scheduled with `waitUntil` when one is due. Waits on KV only when there is none yet.
   */
  current(
    /** The request's context: a due refresh goes on in its waitUntil. */
    ctx: { waitUntil(promise: Promise<unknown>): void },
    /** The request's host: with a compiled layout, a cold load reads its shard at once. */
    host?: string,
  ): Snapshot | undefined | Promise<Snapshot | undefined> {
    const now = this.options.now();
    if (this.snapshot) {
      if (now - this.attemptedAt >= this.options.refreshMs) ctx.waitUntil(this.refresh());
      return this.snapshot;
    }
    if (this.inFlight || now - this.attemptedAt >= COLD_RETRY_MS)
      return this.refresh(host).then(() => this.snapshot);
    return undefined;
  }

  /** Reads KV and swaps in a new snapshot if anything changed; never throws. */
  refresh(host?: string): Promise<void> {
    this.inFlight ??= this.load(host).finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async load(host?: string): Promise<void> {
    const { kv, now, log } = this.options;
    this.attemptedAt = now();
    this.reporting = new Set();
    try {
      // KV bills every read. While the snapshot in use was read whole, the document is read with
      // its metadata at once; otherwise only the metadata is read first (a layout needs no
      // document), and the text, when needed, as text below: the same text decoded from this
      // stream made every later request of a 10,000-route isolate cost 90,000 instructions more
      // (npm run bench:instructions, docs/benchmarks.md).
      let routesText: string | null | undefined;
      let metadata: unknown;
      if (this.snapshot?.routes instanceof RouteTable) {
        const read = await kv.getWithMetadata(ROUTES_KEY, CACHED_TEXT);
        routesText = read.value;
        metadata = read.metadata;
        if (routesText === null) throw new LoadFailure(ROUTES_MISSING);
      } else {
        const read = await kv.getWithMetadata(ROUTES_KEY, {
          type: "stream",
          cacheTtl: KV_CACHE_TTL_SECONDS,
        });
        if (read.value === null) throw new LoadFailure(ROUTES_MISSING);
        await read.value.cancel();
        metadata = read.metadata;
      }
      const layout = compiledMetadataOf(metadata);
      let routes: SnapshotRoutes;
      let routesId: string;
      if (layout) {
        routes = await this.compiledTable(layout, host);
        routesId = `${layout.compiled}@`;
        // The text of a document read whole before is not needed to recognise a layout.
        this.lastRoutes = undefined;
      } else {
        routesText ??= await kv.get(ROUTES_KEY, CACHED_TEXT);
        if (routesText === null) throw new LoadFailure(ROUTES_MISSING);
        const parsed = await this.wholeTable(routesText);
        routes = parsed.table;
        routesId = parsed.hash;
      }
      const names = kvPoolNames(routes);
      const texts = await this.readPools(names);
      const kvPools = new Map<string, CompiledPoolDocument | null>();
      const generationParts = [routesId];
      let changed = routes !== this.snapshot?.routes;
      let sliced = 0;
      // The names again: a shard read while the pools were (compiled layout) may have added some,
      // whose pools that read accepted.
      for (const name of kvPoolNames(routes)) {
        const text = texts.get(poolKey(name));
        // Many pools take a while to compare (and changed ones to parse): let waiting requests
        // run between slices.
        sliced += text?.length ?? 0;
        if (sliced > HASH_SLICE_CHARS) {
          sliced = 0;
          await breathe();
        }
        const pool = text === undefined ? this.goodPools.get(name) : this.acceptPool(name, text);
        const spec = pool?.spec ?? null;
        kvPools.set(name, spec);
        if (!changed && this.snapshot?.stored.get(name) !== spec) changed = true;
        generationParts.push(`${name}=${pool?.hash ?? ""}`);
      }
      if (changed) {
        const generation = stableHash(generationParts.join("\n"));
        if (routes.length > LARGE_DOCUMENT_ROUTES) await breathe();
        const snapshot = compileSnapshot({
          generation,
          routes,
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
          routes: routes.length,
          pools: snapshot.specs.size,
        });
        if (this.history.length > GENERATIONS_KEPT) this.history.shift();
        log.info("snapshot loaded", {
          generation,
          routes: routes.length,
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

  /**
   * The table of a routes document read whole: the one parsed last when the text is the same
   * (compared, not hashed), else the text parsed and validated a slice at a time.
   */
  private async wholeTable(routesText: string): Promise<ParsedRoutes> {
    // A refresh usually finds the text it parsed last time: recognised by comparing the two,
    // no hash and no parse. An invalid text seen before (recognised by its hash) fails the same
    // way without being parsed again.
    const last = this.lastRoutes;
    if (last !== undefined && (await sameText(last.text, routesText))) return last;
    const routesHash = await this.hash(routesText);
    if (same(this.lastInvalidRoutes, routesText, routesHash))
      throw new LoadFailure(this.lastInvalidRoutes.message);
    // Validated a slice of routes at a time, so that requests are served in between.
    const parsed = await parseRoutesTextInSlices(routesText, breathe);
    if (!parsed.ok) {
      const message = `the routes document is invalid: ${parsed.problems.map(formatProblem).join("; ")}`;
      this.lastInvalidRoutes = { length: routesText.length, hash: routesHash, message };
      throw new LoadFailure(message);
    }
    const parsedRoutes = {
      length: routesText.length,
      hash: routesHash,
      table: await routeTableInSlices(parsed.value, breathe),
      text: routesText,
    };
    this.lastRoutes = parsedRoutes;
    this.lastInvalidRoutes = undefined;
    // A large document takes a while to parse and to compile: let waiting requests run between.
    if (routesText.length > LARGE_DOCUMENT_CHARS) await breathe();
    return parsedRoutes;
  }

  /**
   * The table of the compiled layout the `routes` key names: the one in memory when the id is
   * the same, else a new one from the layout's head, read with the shard of `host` (a cold
   * isolate's first request) in the same bulk get.
   */
  private async compiledTable(
    layout: CompiledMetadata,
    host: string | undefined,
  ): Promise<CompiledRouteTable> {
    const current = this.snapshot?.routes;
    if (current instanceof CompiledRouteTable && current.id === layout.compiled) return current;
    const id = layout.compiled;
    const headKey = compiledHeadKey(id);
    const shard = host === undefined ? undefined : shardOf(host, layout.shards);
    const keys = shard === undefined ? [headKey] : [headKey, compiledShardKey(id, shard)];
    const texts = await this.options.kv.get(keys, CACHED_TEXT);
    const headText = texts.get(headKey) ?? null;
    if (headText === null)
      throw new LoadFailure(
        `the routes key names the compiled layout ${id}, but KV has no key "${headKey}" (switchyard push writes it first; KV may not show it here yet)`,
      );
    const head = parseCompiledHead(headText, id);
    if (typeof head === "string")
      throw new LoadFailure(`KV key "${headKey}" is malformed: ${head}`);
    if (head.shards !== layout.shards)
      throw new LoadFailure(
        `KV key "${headKey}" has ${head.shards} shards, the routes key's metadata says ${layout.shards}`,
      );
    const table = new CompiledRouteTable(head);
    const shardText = shard === undefined ? null : (texts.get(keys[1] as string) ?? null);
    // A shard that is missing or malformed here is read again when a request needs it.
    if (shardText !== null && shard !== undefined) {
      const part = parseCompiledShard(shardText, id, shard);
      // Its pools are read with the head's (load): no request sees the table before.
      if (typeof part !== "string") table.addShard(part);
    }
    return table;
  }

  /**
   * A snapshot that can match a request for `host`: `snapshot` once the shard of the compiled
   * layout that holds `host`'s routes is read, with the pools it names (or a newer snapshot, when
   * that shard's layout has been replaced), or what went wrong.
   */
  async withShard(snapshot: Snapshot, host: string): Promise<Snapshot | string> {
    let current = snapshot;
    let refreshed = false;
    // A host needs its own shard and the shard of each suffix a wildcard names: a few at most.
    for (let reads = 0; reads <= MAX_SHARDS; reads++) {
      const table = current.routes;
      const shard = table.missingShard(host);
      if (shard === undefined || !(table instanceof CompiledRouteTable)) return current;
      const problem = await this.readShard(current, table, shard);
      if (problem === undefined) continue;
      // The layout may be gone because a newer one replaced it: look once more at the routes key.
      if (refreshed) return problem;
      refreshed = true;
      await this.refresh();
      if (this.snapshot === undefined || this.snapshot.routes === table) return problem;
      current = this.snapshot;
    }
    return `the routes of ${host} need more shards than the layout has`;
  }

  /** Reads shard `n` into `table` and its pools into `snapshot`, once however many requests ask. */
  private readShard(
    snapshot: Snapshot,
    table: CompiledRouteTable,
    n: number,
  ): Promise<string | undefined> {
    const key = compiledShardKey(table.id, n);
    let reading = this.shardsReading.get(key);
    if (reading === undefined) {
      reading = this.readShardOnce(snapshot, table, n).finally(() =>
        this.shardsReading.delete(key),
      );
      this.shardsReading.set(key, reading);
    }
    return reading;
  }

  private async readShardOnce(
    snapshot: Snapshot,
    table: CompiledRouteTable,
    n: number,
  ): Promise<string | undefined> {
    const key = compiledShardKey(table.id, n);
    try {
      const text = await this.options.kv.get(key, CACHED_TEXT);
      if (text === null) return `the routes of this host are in KV key "${key}", which is missing`;
      const part = parseCompiledShard(text, table.id, n);
      if (typeof part === "string") return `KV key "${key}" is malformed: ${part}`;
      const names = kvPoolNames(table, table.newPools(part.routes));
      const texts = await this.readPools(names);
      const kvPools = new Map<string, CompiledPoolDocument | null>();
      for (const name of names)
        kvPools.set(name, this.acceptPool(name, texts.get(poolKey(name)) ?? null)?.spec ?? null);
      // The shard and its pools go in together, so a request never sees one without the other.
      const added = table.addShard(part);
      snapshot.addPart(added, kvPools);
      // A snapshot built over the same table while the shard was read did not see it either.
      if (this.snapshot !== snapshot && this.snapshot?.routes === table)
        this.snapshot.addPart(added, kvPools);
      for (const warning of added.warnings)
        this.options.log.warn(warning, { generation: snapshot.generation });
      return undefined;
    } catch (error) {
      return `reading KV key "${key}" failed: ${(error as Error).message}`;
    }
  }

  /**
   * The whole routes document the snapshot serves, for the admin API (never for a request): the
   * snapshot's own table, or with a compiled layout the `routes` document read and validated
   * once per layout, which costs what loading it whole costs. Undefined before any snapshot.
   */
  async wholeRoutes(): Promise<RouteTable | string | undefined> {
    const routes = this.snapshot?.routes;
    if (routes === undefined || routes instanceof RouteTable) return routes;
    if (!(routes instanceof CompiledRouteTable)) return "the routes in use are not a document";
    if (this.adminTable?.id === routes.id) return this.adminTable.table;
    const text = await this.options.kv.get(ROUTES_KEY, { type: "text" });
    if (text === null) return ROUTES_MISSING;
    const parsed = await parseRoutesTextInSlices(text, breathe);
    if (!parsed.ok)
      return `the routes document is invalid: ${parsed.problems.map(formatProblem).join("; ")}`;
    const table = await routeTableInSlices(parsed.value, breathe);
    this.adminTable = { id: routes.id, table };
    return table;
  }

  /** The hash of a KV text; a long one is hashed a slice at a time, with requests served between. */
  private async hash(text: string): Promise<string> {
    if (text.length <= HASH_SLICE_CHARS) return stableHash(text);
    const hash = new TextHash();
    await everySlice(text.length, (start, end) => {
      hash.update(text, start, end);
      return true;
    });
    return hash.digest();
  }

  private async readPools(names: string[]): Promise<Map<string, string | null>> {
    const maps = await Promise.all(
      chunks(names.map(poolKey), KV_BULK_GET_MAX_KEYS).map((keys) =>
        this.options.kv.get(keys, CACHED_TEXT),
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
    const previous = this.goodPools.get(name);
    if (previous?.text === text) return previous;
    const parsed = parsePoolText(text);
    if (parsed.ok) {
      const good = {
        text,
        hash: stableHash(text),
        spec: compilePoolDocument(name, parsed.value, "kv"),
      };
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
