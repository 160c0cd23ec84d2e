import type { Logger } from "pino";
import { groupSlices, serviceKey } from "./desired.ts";
import type { HeapExhausted } from "./heap-guard.ts";
import type { KubeClient } from "./kube-client.ts";
import {
  type EndpointSlice,
  type Node,
  type NodeRecord,
  SERVICE_NAME_LABEL,
  type Service,
  type ServiceRecord,
  type SliceRecord,
} from "./model.ts";
import {
  detailCode,
  detailFor,
  Interner,
  nodeRecord,
  type Selection,
  serviceRecord,
  sliceRecord,
  sliceServiceKey,
} from "./records.ts";
import { listPages, PAGE_SIZE, Reflector } from "./reflector.ts";

/**
 * The source stage: list/watch caches (reflector.ts) of the selected Services, of every
 * EndpointSlice and (when a URL template needs them) of Nodes, cluster-wide, each kept as
 * records. With `--service-selector` the API server selects the Services. A slice keeps only
 * what its Service needs (records.ts Detail): the slices of Services that are not selected keep
 * no endpoints. When a Service's needs grow (it becomes selected, or its template starts naming
 * {pod} or {node}), its slices are listed again by label, and the source is not healthy until
 * they are in. Changes are only signals: each names the Service whose pools must be recomputed
 * ("*" for all). Until every cache has listed, the source is not healthy and nothing may be
 * written (an empty cache is not an empty cluster).
 */

export const ALL = "*";

export interface ClusterView {
  services: Iterable<ServiceRecord>;
  slicesByService: ReadonlyMap<string, readonly SliceRecord[]>;
  nodes: ReadonlyMap<string, NodeRecord> | undefined;
}

export interface SourceOptions {
  client: KubeClient;
  selection: Selection;
  /** Watch Nodes from the start; otherwise only once requireNodes() is called. */
  needNodes: boolean;
  log: Logger;
  onChange: (serviceKey: string) => void;
  onError?: (resource: string) => void;
  retryDelayMs?: number;
  pageSize?: number;
  /** After each page of a list: throws HeapExhausted when the heap cannot take more. */
  afterPage?: () => void;
  onHeapExhausted?: (error: HeapExhausted) => void;
}

const PATHS = {
  services: "/api/v1/services",
  endpointslices: "/apis/discovery.k8s.io/v1/endpointslices",
  nodes: "/api/v1/nodes",
} as const;

export class ClusterSource {
  private readonly services: Reflector<ServiceRecord>;
  private readonly slices: Reflector<SliceRecord>;
  private nodeCache: Reflector<NodeRecord> | undefined;
  /** Slice keys by Service key, kept as slices come and go. */
  private readonly sliceIndex = new Map<string, Set<string>>();
  private readonly intern = new Interner();
  /** Services whose slices are being listed again for more detail. */
  private readonly refetching = new Set<string>();
  private started = false;
  private halted = false;
  private readonly options: SourceOptions;

  constructor(options: SourceOptions) {
    this.options = options;
    const { selection } = options;
    this.services = this.reflector<ServiceRecord>(
      "services",
      (o: Service) => serviceRecord(o, selection, this.intern),
      (key, before, after) => {
        if (detailCode(detailFor(before)) !== detailCode(detailFor(after))) this.refetch(key);
        options.onChange(key);
      },
      selection.serviceSelector,
    );
    this.slices = this.reflector<SliceRecord>(
      "endpointslices",
      (o: EndpointSlice) => this.reduceSlice(o),
      (key, before, after) => {
        if (before) this.unindex(sliceServiceKey(before), key);
        if (after) {
          const service = sliceServiceKey(after);
          const keys = this.sliceIndex.get(service) ?? new Set<string>();
          this.sliceIndex.set(service, keys.add(key));
          options.onChange(service);
        }
      },
    );
    if (options.needNodes) this.addNodes();
  }

  private reduceSlice(slice: EndpointSlice): SliceRecord | undefined {
    const service = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
    const key = `${slice.metadata?.namespace ?? ""}/${service ?? ""}`;
    return sliceRecord(slice, this.intern, detailFor(this.services.items.get(key)));
  }

  /**
   * A Service needs more of its slices than the cache kept: list them again by label, and take
   * each one that still has less than its Service needs now (a watch event may have brought it
   * in full meanwhile; a slice deleted meanwhile stays deleted).
   */
  private refetch(serviceKey: string): void {
    const keys = this.sliceIndex.get(serviceKey);
    // Before the slices' first list completes, that list reduces them with the current needs.
    if (!keys || keys.size === 0 || !this.slices.synced || this.refetching.has(serviceKey)) return;
    this.options.log.debug({ service: serviceKey }, "listing a Service's EndpointSlices again");
    this.refetching.add(serviceKey);
    const [namespace, name] = serviceKey.split("/") as [string, string];
    void (async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          await listPages(
            this.options.client,
            `/apis/discovery.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/endpointslices`,
            `kubernetes.io/service-name=${name}`,
            undefined,
            (item) => {
              const sliceKey = `${item.metadata?.namespace ?? ""}/${item.metadata?.name ?? ""}`;
              const current = this.slices.items.get(sliceKey);
              const want = detailCode(detailFor(this.services.items.get(serviceKey)));
              if (current && current.detail !== want)
                this.slices.replace(sliceKey, this.reduceSlice(item as EndpointSlice));
            },
          );
          break;
        } catch (error) {
          this.options.onError?.("endpointslices");
          this.options.log.warn(
            { service: serviceKey, error: (error as Error).message, attempt },
            "listing a Service's EndpointSlices failed; retrying",
          );
          await new Promise((resolve) => setTimeout(resolve, Math.min(30_000, 500 * 2 ** attempt)));
        }
      }
      this.refetching.delete(serviceKey);
      this.options.onChange(serviceKey);
    })();
  }

  private unindex(service: string, sliceKey: string): void {
    const keys = this.sliceIndex.get(service);
    keys?.delete(sliceKey);
    if (keys?.size === 0) this.sliceIndex.delete(service);
    this.options.onChange(service);
  }

  /** After slices were listed: Services whose needs changed during the list get theirs again. */
  private refetchStale(): void {
    for (const [service, keys] of this.sliceIndex) {
      const want = detailCode(detailFor(this.services.items.get(service)));
      for (const key of keys) {
        if (this.slices.items.get(key)?.detail !== want) {
          this.refetch(service);
          break;
        }
      }
    }
  }

  private reflector<R>(
    name: keyof typeof PATHS,
    reduce: (object: never) => R | undefined,
    onChange: (key: string, before: R | undefined, after: R | undefined) => void,
    labelSelector?: string,
  ): Reflector<R> {
    return new Reflector<R>({
      client: this.options.client,
      path: PATHS[name],
      name,
      labelSelector,
      reduce,
      onChange,
      onListed: () => {
        if (name === "endpointslices") this.refetchStale();
        this.options.onChange(ALL);
      },
      // Passes wait while any cache is failing: one more, once all are well again.
      onRecovered: () => this.options.onChange(ALL),
      onError: () => this.options.onError?.(name),
      log: this.options.log,
      pageSize: this.options.pageSize ?? PAGE_SIZE,
      retryDelayMs: this.options.retryDelayMs,
      afterPage: this.options.afterPage,
      onHeapExhausted: this.options.onHeapExhausted,
    });
  }

  private addNodes(): Reflector<NodeRecord> {
    this.nodeCache = this.reflector<NodeRecord>(
      "nodes",
      (o: Node) => nodeRecord(o),
      () => this.options.onChange(ALL),
    );
    return this.nodeCache;
  }

  /**
   * Whether the Node cache can be used now. The first call starts watching Nodes; until they
   * are listed the source is not healthy, and their first listing signals a full recompute.
   */
  requireNodes(): boolean {
    if (this.nodeCache) return this.nodeCache.synced;
    const cache = this.addNodes();
    if (this.started) void cache.start();
    return false;
  }

  private get caches(): Reflector<unknown>[] {
    return [
      this.services,
      this.slices,
      ...(this.nodeCache ? [this.nodeCache] : []),
    ] as Reflector<unknown>[];
  }

  /** Every cache has listed, none is failing now, and no slices are being listed again. */
  get healthy(): boolean {
    return this.refetching.size === 0 && this.caches.every((c) => c.synced && !c.failing);
  }

  get status(): Record<string, "synced" | "failing" | "starting"> {
    const of = (c: Reflector<unknown>) =>
      c.failing ? "failing" : c.synced ? "synced" : "starting";
    return {
      services: of(this.services as Reflector<unknown>),
      endpointslices: of(this.slices as Reflector<unknown>),
      ...(this.nodeCache ? { nodes: of(this.nodeCache as Reflector<unknown>) } : {}),
    };
  }

  /** Services list first: slices are reduced by what their Service needs. */
  async start(): Promise<void> {
    this.started = true;
    this.halted = false;
    await this.services.start();
    if (this.halted) return; // stopped while the Services were listed
    await Promise.all(
      this.caches.filter((c) => c !== (this.services as Reflector<unknown>)).map((c) => c.start()),
    );
  }

  async stop(): Promise<void> {
    this.halted = true;
    await Promise.all(this.caches.map((c) => c.stop()));
  }

  /** What the caches hold: selected Services, and the endpoints of their slices. */
  holding(): { services: number; endpoints: number } {
    let endpoints = 0;
    for (const slice of this.slices.items.values()) endpoints += slice.endpoints.length;
    return { services: this.services.items.size, endpoints };
  }

  /** Drops every cache (after stop): nothing is held, and nothing is healthy until relisted. */
  clear(): void {
    for (const cache of this.caches) cache.clear();
    this.sliceIndex.clear();
    this.refetching.clear();
  }

  view(): ClusterView {
    return {
      services: this.services.items.values(),
      slicesByService: groupSlices(this.slices.items.values()),
      nodes: this.nodes(),
    };
  }

  /** The Service record (if selected) and slices of one Service key, from the caches. */
  serviceView(key: string): { service: ServiceRecord | undefined; slices: SliceRecord[] } {
    const service = this.services.items.get(key);
    const slices: SliceRecord[] = [];
    for (const sliceKey of this.sliceIndex.get(key) ?? []) {
      const slice = this.slices.items.get(sliceKey);
      if (slice) slices.push(slice);
    }
    return { service, slices };
  }

  nodes(): Map<string, NodeRecord> | undefined {
    return this.nodeCache
      ? new Map([...this.nodeCache.items.values()].map((n) => [n.name, n]))
      : undefined;
  }
}

/** One paged list of everything, for --once: no watch. */
export async function listOnce(
  client: KubeClient,
  selection: Selection,
  needNodes: (services: Iterable<ServiceRecord>) => boolean,
  log: Logger,
): Promise<ClusterView> {
  const intern = new Interner();
  const list = async <R>(
    name: keyof typeof PATHS,
    reduce: (o: never) => R | undefined,
    labelSelector?: string,
  ) => {
    const items: R[] = [];
    await listPages(client, PATHS[name], labelSelector, undefined, (item) => {
      const record = reduce(item as never);
      if (record !== undefined) items.push(record);
    });
    log.debug({ resource: name, count: items.length }, "listed");
    return items;
  };
  const services = await list(
    "services",
    (o: Service) => serviceRecord(o, selection, intern),
    selection.serviceSelector,
  );
  const byKey = new Map(services.map((s) => [serviceKey(s), s]));
  const slices = await list("endpointslices", (o: EndpointSlice) => {
    const service = `${o.metadata?.namespace ?? ""}/${o.metadata?.labels?.[SERVICE_NAME_LABEL] ?? ""}`;
    return sliceRecord(o, intern, detailFor(byKey.get(service)));
  });
  const nodes = needNodes(services) ? await list("nodes", (o: Node) => nodeRecord(o)) : undefined;
  return {
    services,
    slicesByService: groupSlices(slices),
    nodes: nodes ? new Map(nodes.map((n) => [n.name, n])) : undefined,
  };
}
