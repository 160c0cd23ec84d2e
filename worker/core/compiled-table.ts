import {
  type CompiledHead,
  type CompiledShard,
  type HttpRoute,
  type IndexedRoute,
  type RoutesDocument,
  shardKeyOf,
  shardOf,
} from "../../contract/index.ts";
import {
  add,
  type HostIndex,
  parseRoute,
  referencedPools,
  routeWarnings,
  type SnapshotRoutes,
} from "./route-table.ts";

/**
 * The routes of a compiled layout (docs/kv-schema.md) that this isolate has read: the head's
 * routes without hostnames from the start, and a shard's routes once a request for one of its
 * hostnames came. An exact hostname, or a wildcard's suffix, is indexed only from its own shard,
 * so all of its routes are known once that shard is in: a request waits for its host's shard and
 * for the shard of each suffix of its host that some wildcard names, and for nothing else.
 * Routes are kept as JSON text and parsed when a request first needs one, as RouteTable does.
 */

/** Hosts remembered as ready to match; the set starts over when it reaches this size. */
const READY_HOSTS_MAX = 10_000;

/** What reading a part added: pools no route in memory named before, and its routes' problems. */
export interface PartAdded {
  pools: string[];
  warnings: string[];
}

export class CompiledRouteTable implements SnapshotRoutes {
  /** The layout's id: the `routes` key's metadata names it. */
  readonly id: string;
  readonly length: number;
  readonly shards: number;
  readonly pools: RoutesDocument["pools"];
  readonly hosts: HostIndex;
  readonly referencedPools: string[] = [];
  readonly warnings: string[] = [];
  private readonly exact = new Map<string, number[]>();
  private readonly texts = new Map<number, string>();
  private readonly parsed = new Map<number, HttpRoute>();
  private readonly loaded: Uint8Array;
  private readonly named = new Set<string>();
  private readonly wildcard = new Map<string, number[]>();
  /** The suffixes some wildcard hostname names (".example.com"), loaded or not. */
  private readonly wildcardSuffixes: ReadonlySet<string>;
  /** Hosts whose shards are all in: they are matched without working that out again. */
  private readonly ready = new Set<string>();

  constructor(head: CompiledHead) {
    this.id = head.id;
    this.length = head.routes;
    this.shards = head.shards;
    this.pools = head.pools;
    this.loaded = new Uint8Array(head.shards);
    this.wildcardSuffixes = new Set(head.wildcards);
    this.hosts = {
      exact: this.exact,
      wildcard: this.wildcard,
      any: head.shared.map(([index]) => index),
    };
    this.keep(head.shared);
  }

  /** How many shards are in memory. */
  get shardsLoaded(): number {
    let count = 0;
    for (const loaded of this.loaded) count += loaded;
    return count;
  }

  missingShard(host: string): number | undefined {
    if (this.ready.has(host)) return undefined;
    const own = shardOf(host, this.shards);
    if (this.loaded[own] !== 1) return own;
    if (this.wildcardSuffixes.size > 0) {
      // The suffixes the matcher tries, longest first.
      for (let dot = host.indexOf(".", 1); dot !== -1; dot = host.indexOf(".", dot + 1)) {
        const suffix = host.slice(dot);
        if (!this.wildcardSuffixes.has(suffix)) continue;
        const shard = shardOf(suffix, this.shards);
        if (this.loaded[shard] !== 1) return shard;
      }
    }
    if (this.ready.size >= READY_HOSTS_MAX) this.ready.clear();
    this.ready.add(host);
    return undefined;
  }

  /** The pools the routes of `part` name that no route in memory names yet. */
  newPools(part: readonly IndexedRoute[]): string[] {
    const pools = new Set<string>();
    for (const [, route] of part)
      for (const pool of referencedPools([route])) if (!this.named.has(pool)) pools.add(pool);
    return [...pools];
  }

  /**
   * Takes in a shard read from KV (parseCompiledShard): its exact hostnames are indexed and its
   * routes kept. A shard already in memory adds nothing.
   */
  addShard(shard: CompiledShard): PartAdded {
    if (this.loaded[shard.shard] === 1) return { pools: [], warnings: [] };
    for (const [index, route] of shard.routes) {
      for (const hostname of route.hostnames) {
        const key = shardKeyOf(hostname);
        if (shardOf(key, this.shards) !== shard.shard) continue;
        add(key.startsWith(".") ? this.wildcard : this.exact, key, index);
      }
    }
    const added = this.keep(shard.routes);
    this.loaded[shard.shard] = 1;
    return added;
  }

  route(index: number): HttpRoute | undefined {
    let route = this.parsed.get(index);
    if (route === undefined) {
      const text = this.texts.get(index);
      if (text === undefined) return undefined;
      route = parseRoute(text);
      this.parsed.set(index, route);
    }
    return route;
  }

  /** Among the routes that have served in this isolate (those the admin API's /traffic names). */
  routeNamed(name: string): HttpRoute | undefined {
    for (const route of this.parsed.values()) if (route.name === name) return route;
    return undefined;
  }

  private keep(routes: readonly IndexedRoute[]): PartAdded {
    const added: PartAdded = { pools: [], warnings: [] };
    for (const [index, route] of routes) {
      if (this.texts.has(index)) continue; // a route of several shards, or shared, is kept once
      this.texts.set(index, JSON.stringify(route));
      for (const pool of referencedPools([route])) {
        if (this.named.has(pool)) continue;
        this.named.add(pool);
        this.referencedPools.push(pool);
        added.pools.push(pool);
      }
      added.warnings.push(...routeWarnings([route]));
    }
    this.warnings.push(...added.warnings);
    return added;
  }
}
