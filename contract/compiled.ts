import type { HttpRoute, RoutesDocument } from "./routes.ts";

/**
 * The compiled routes layout (docs/kv-schema.md): a validated routes document split by host, so
 * that an isolate reads and parses only the part a request needs. The CLI writes it beside the
 * `routes` key whenever it writes that key; the worker serves from it when the `routes` key's
 * metadata names it, and from the whole document otherwise. Everything here is pure: the same
 * document and id always give the same keys and texts.
 */

/** Prefix of the compiled layout's keys: `routes@<id>` and `routes@<id>/<shard>`. */
export const COMPILED_KEY_PREFIX = "routes@";

/**
 * Characters of routes aimed at per shard: a request that needs a shard not read yet costs 1.4 to
 * 2.1 ms of CPU with it, against 2.0 to 3.2 ms at 64 KiB (docs/benchmarks.md).
 */
export const SHARD_TARGET_CHARS = 16 * 1024;

/** The most shards a document is split into: it bounds the keys one push writes. */
export const MAX_SHARDS = 4096;

/** KV metadata of a `routes` key that has a compiled layout. */
export interface CompiledMetadata {
  /** The id of the layout: `routes@<compiled>` holds its head. */
  compiled: string;
  /** How many shards it has, so that a cold isolate can read the head and a shard at once. */
  shards: number;
}

/** A route with its position in the document, which orders matches and names rules. */
export type IndexedRoute = [index: number, route: HttpRoute];

/** The value of `routes@<id>`: what every request needs before its shard. */
export interface CompiledHead {
  version: 1;
  id: string;
  /** How many routes the document has. */
  routes: number;
  shards: number;
  /** The document's inline pools. */
  pools: RoutesDocument["pools"];
  /** Routes without hostnames: they take any host. */
  shared: IndexedRoute[];
  /**
   * The suffixes of the document's wildcard hostnames (".example.com" for "*.example.com"),
   * sorted: a request for a host under one also needs that suffix's shard.
   */
  wildcards: string[];
}

/**
 * The value of `routes@<id>/<n>`: the routes with a hostname of shard n, an exact hostname or a
 * wildcard's suffix (shardKeyOf).
 */
export interface CompiledShard {
  version: 1;
  id: string;
  shard: number;
  routes: IndexedRoute[];
}

export function compiledHeadKey(id: string): string {
  return `${COMPILED_KEY_PREFIX}${id}`;
}

export function compiledShardKey(id: string, shard: number): string {
  return `${COMPILED_KEY_PREFIX}${id}/${shard}`;
}

/** The layout id a compiled key belongs to, or undefined for any other key. */
export function compiledIdOfKey(key: string): string | undefined {
  if (!key.startsWith(COMPILED_KEY_PREFIX)) return undefined;
  const slash = key.indexOf("/", COMPILED_KEY_PREFIX.length);
  return key.slice(COMPILED_KEY_PREFIX.length, slash === -1 ? undefined : slash);
}

/** The `routes` key's metadata as the compiled layout's, or undefined when it names none. */
export function compiledMetadataOf(metadata: unknown): CompiledMetadata | undefined {
  const m = metadata as Partial<CompiledMetadata> | null | undefined;
  if (typeof m?.compiled !== "string" || m.compiled === "") return undefined;
  if (!Number.isInteger(m.shards) || (m.shards as number) < 1 || (m.shards as number) > MAX_SHARDS)
    return undefined;
  return { compiled: m.compiled, shards: m.shards as number };
}

/**
 * The shard of a host or a wildcard suffix (lower case, no port, as requests are matched): FNV-1a
 * over its UTF-16 code units, modulo the shard count.
 */
export function shardOf(key: string, shards: number): number {
  if (shards === 1) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return (h >>> 0) % shards;
}

/**
 * What a route's hostname is sharded by: an exact hostname itself, a wildcard "*.example.com"
 * by its suffix ".example.com", both in lower case.
 */
export function shardKeyOf(hostname: string): string {
  const lower = hostname.toLowerCase();
  return lower.startsWith("*.") ? lower.slice(1) : lower;
}

/**
 * The shards a route belongs to (each of its hostnames' shard, once each, ascending), and
 * whether it is shared (no hostname: any host may need it).
 */
export function placementOf(
  route: Pick<HttpRoute, "hostnames">,
  shards: number,
): { shards: number[]; shared: boolean } {
  const set = new Set(route.hostnames.map((hostname) => shardOf(shardKeyOf(hostname), shards)));
  return { shards: [...set].sort((a, b) => a - b), shared: route.hostnames.length === 0 };
}

/** How many shards a document of this many characters gets. */
export function shardCountFor(textLength: number): number {
  return Math.min(MAX_SHARDS, Math.max(1, Math.ceil(textLength / SHARD_TARGET_CHARS)));
}

export interface CompiledLayout {
  metadata: CompiledMetadata;
  head: CompiledHead;
  /** One per shard, in shard order; a shard may have no routes. */
  shards: CompiledShard[];
}

/**
 * Splits a validated document into the compiled layout. `id` names the layout (the CLI uses a
 * hash of the document's text); `shards` is how many shards to make (shardCountFor).
 */
export function compileRoutes(
  document: RoutesDocument,
  id: string,
  shards: number,
): CompiledLayout {
  if (!Number.isInteger(shards) || shards < 1 || shards > MAX_SHARDS)
    throw new RangeError(`shards must be an integer from 1 to ${MAX_SHARDS}, not ${shards}`);
  const shared: IndexedRoute[] = [];
  const wildcards = new Set<string>();
  const parts: IndexedRoute[][] = Array.from({ length: shards }, () => []);
  document.routes.forEach((route, index) => {
    const placement = placementOf(route, shards);
    if (placement.shared) shared.push([index, route]);
    for (const shard of placement.shards) parts[shard]?.push([index, route]);
    for (const hostname of route.hostnames)
      if (hostname.startsWith("*.")) wildcards.add(shardKeyOf(hostname));
  });
  return {
    metadata: { compiled: id, shards },
    head: {
      version: 1,
      id,
      routes: document.routes.length,
      shards,
      pools: document.pools,
      shared,
      wildcards: [...wildcards].sort(),
    },
    shards: parts.map((routes, shard) => ({ version: 1, id, shard, routes })),
  };
}

/** The KV keys and texts of a layout, head first: what a writer puts beside the `routes` key. */
export function layoutEntries(layout: CompiledLayout): { key: string; value: string }[] {
  const { id } = layout.head;
  return [
    { key: compiledHeadKey(id), value: JSON.stringify(layout.head) },
    ...layout.shards.map((shard) => ({
      key: compiledShardKey(id, shard.shard),
      value: JSON.stringify(shard),
    })),
  ];
}

/**
 * Checks the envelope of a compiled head or shard read from KV (the routes in it were validated
 * by the writer): a text that is not the part asked for is refused with what is wrong.
 */
export function parseCompiledHead(text: string, id: string): CompiledHead | string {
  const value = parseEnvelope(text, id);
  if (typeof value === "string") return value;
  const head = value as Partial<CompiledHead>;
  if (!Number.isInteger(head.routes) || !Number.isInteger(head.shards))
    return "routes and shards must be integers";
  if (!Array.isArray(head.shared)) return "shared must be a list of routes";
  const shared = problemOfRoutes("shared", head.shared);
  if (shared !== undefined) return shared;
  if (!Array.isArray(head.wildcards) || !head.wildcards.every((w) => typeof w === "string"))
    return "wildcards must be a list of suffixes";
  if (head.pools === null || typeof head.pools !== "object") return "pools must be an object";
  return head as CompiledHead;
}

export function parseCompiledShard(
  text: string,
  id: string,
  shard: number,
): CompiledShard | string {
  const value = parseEnvelope(text, id);
  if (typeof value === "string") return value;
  const part = value as Partial<CompiledShard>;
  if (part.shard !== shard) return `it is shard ${String(part.shard)}, not ${shard}`;
  if (!Array.isArray(part.routes)) return "routes must be a list";
  return problemOfRoutes("routes", part.routes) ?? (part as CompiledShard);
}

/**
 * What is wrong with a part's list of `[index, route]` entries, or undefined: the shape the
 * worker reads before it trusts a route (the routes themselves were validated by the writer).
 */
function problemOfRoutes(field: string, entries: unknown[]): string | undefined {
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i];
    const route = Array.isArray(entry) ? (entry[1] as Partial<HttpRoute> | null) : undefined;
    if (
      !Array.isArray(entry) ||
      entry.length !== 2 ||
      !Number.isInteger(entry[0]) ||
      (entry[0] as number) < 0 ||
      route === null ||
      typeof route !== "object" ||
      typeof route.name !== "string" ||
      !Array.isArray(route.hostnames) ||
      !route.hostnames.every((h) => typeof h === "string") ||
      !Array.isArray(route.rules)
    )
      return `${field}[${i}] must be [index, route], a route with a name, hostnames and rules`;
    if (i > 0 && (entry[0] as number) <= ((entries[i - 1] as [number])[0] as number))
      return `${field}[${i}]: routes must be in document order`;
  }
  return undefined;
}

function parseEnvelope(text: string, id: string): object | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return `is not JSON: ${(error as Error).message}`;
  }
  if (value === null || typeof value !== "object") return "is not an object";
  const envelope = value as { version?: unknown; id?: unknown };
  if (envelope.version !== 1) return "version must be 1";
  if (envelope.id !== id) return `it belongs to layout ${String(envelope.id)}, not ${id}`;
  return value;
}
