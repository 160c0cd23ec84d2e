import * as k8s from "@kubernetes/client-node";
import type { Logger } from "pino";
import { sliceServiceKey } from "./desired.ts";
import { type EndpointSlice, type Node, objectKey, type Service } from "./model.ts";

/**
 * The source stage: informers on Services, EndpointSlices and (when a URL template needs them)
 * Nodes, cluster-wide. Their events are only signals: each names the Service whose pools must
 * be recomputed ("*" for all). An informer stops on any error other than 410 Gone and timeouts,
 * so this restarts it with backoff; until it has listed again, the source is not healthy and
 * nothing may be written (an empty cache is not an empty cluster).
 */

export const ALL = "*";

export interface ClusterView {
  services: Service[];
  slicesByService: Map<string, EndpointSlice[]>;
  nodes: Map<string, Node> | undefined;
}

export interface SourceOptions {
  /** Watch Nodes from the start; otherwise only once requireNodes() is called. */
  needNodes: boolean;
  log: Logger;
  onChange: (serviceKey: string) => void;
  onRestart?: (resource: string) => void;
  /** First restart delay; doubles up to 30 s. */
  restartDelayMs?: number;
}

interface Watched {
  name: string;
  informer: k8s.Informer<k8s.KubernetesObject> & k8s.ObjectCache<k8s.KubernetesObject>;
  listed: boolean;
  failing: boolean;
  delayMs: number;
  timer: ReturnType<typeof setTimeout> | undefined;
}

export class ClusterSource {
  private readonly watched: Watched[] = [];
  private nodeWatch: Watched | undefined;
  private started = false;
  private stopping = false;
  private readonly options: SourceOptions;
  private readonly kc: k8s.KubeConfig;

  constructor(kc: k8s.KubeConfig, options: SourceOptions) {
    this.options = options;
    this.kc = kc;
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const discovery = kc.makeApiClient(k8s.DiscoveryV1Api);
    this.add(
      "services",
      "/api/v1/services",
      () => core.listServiceForAllNamespaces(),
      (o) => objectKey(o.metadata),
    );
    this.add(
      "endpointslices",
      "/apis/discovery.k8s.io/v1/endpointslices",
      () => discovery.listEndpointSliceForAllNamespaces(),
      (o) => sliceServiceKey(o as EndpointSlice),
    );
    if (options.needNodes) this.addNodes();
  }

  private addNodes(): Watched {
    const core = this.kc.makeApiClient(k8s.CoreV1Api);
    this.nodeWatch = this.add(
      "nodes",
      "/api/v1/nodes",
      () => core.listNode(),
      () => ALL,
    );
    return this.nodeWatch;
  }

  /**
   * Whether the Node cache can be used now. The first call starts watching Nodes; until they
   * are listed the source is not healthy, and their first listing signals a full recompute.
   */
  requireNodes(): boolean {
    if (this.nodeWatch) return this.nodeWatch.listed;
    const watched = this.addNodes();
    if (this.started) void this.startOne(watched).then(() => this.options.onChange(ALL));
    return false;
  }

  private add(
    name: string,
    path: string,
    list: () => Promise<k8s.KubernetesListObject<k8s.KubernetesObject>>,
    keyOf: (o: k8s.KubernetesObject) => string | undefined,
  ): Watched {
    const { options } = this;
    {
      const informer = k8s.makeInformer(this.kc, path, list);
      const watched: Watched = {
        name,
        informer,
        listed: false,
        failing: false,
        delayMs: options.restartDelayMs ?? 1000,
        timer: undefined,
      };
      const signal = (object: k8s.KubernetesObject) => {
        const key = keyOf(object);
        if (key !== undefined) options.onChange(key);
      };
      informer.on("add", signal);
      informer.on("update", signal);
      informer.on("delete", signal);
      informer.on("connect", () => {
        if (watched.failing) options.log.info({ resource: name }, "informer reconnected");
      });
      informer.on("error", (error: unknown) => this.failed(watched, error));
      this.watched.push(watched);
      return watched;
    }
  }

  /** Every informer has listed, and none is failing now. */
  get healthy(): boolean {
    return this.watched.every((w) => w.listed && !w.failing);
  }

  get status(): Record<string, "synced" | "failing" | "starting"> {
    return Object.fromEntries(
      this.watched.map((w) => [w.name, w.failing ? "failing" : w.listed ? "synced" : "starting"]),
    );
  }

  private failed(watched: Watched, error: unknown): void {
    if (this.stopping) return; // stop() makes the informer report an aborted request
    watched.failing = true;
    const delay = watched.delayMs;
    watched.delayMs = Math.min(delay * 2, 30_000);
    this.options.log.warn(
      {
        resource: watched.name,
        error: (error as Error)?.message ?? String(error),
        retryInMs: delay,
      },
      "informer stopped; restarting",
    );
    this.options.onRestart?.(watched.name);
    clearTimeout(watched.timer);
    watched.timer = setTimeout(() => void this.startOne(watched), delay);
  }

  private async startOne(watched: Watched): Promise<void> {
    if (this.stopping) return;
    const wasFailing = watched.failing;
    watched.failing = false;
    await watched.informer.start();
    // start() resolves once the list is done and the watch is open, or after it reported an
    // error (then `failing` is set again by the error handler).
    if (!watched.failing) {
      watched.listed = true;
      watched.delayMs = this.options.restartDelayMs ?? 1000;
      if (wasFailing) this.options.onChange(ALL); // events may have been missed: recompute all
    }
  }

  async start(): Promise<void> {
    this.stopping = false;
    this.started = true;
    await Promise.all(this.watched.map((w) => this.startOne(w)));
    this.options.onChange(ALL);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const w of this.watched) clearTimeout(w.timer);
    await Promise.all(this.watched.map((w) => w.informer.stop()));
  }

  view(): ClusterView {
    const [services, slices] = this.watched.map((w) => w.informer.list());
    const nodes = this.nodeWatch?.informer.list();
    const slicesByService = new Map<string, EndpointSlice[]>();
    for (const slice of (slices ?? []) as EndpointSlice[]) {
      const key = sliceServiceKey(slice);
      if (key === undefined) continue;
      const list = slicesByService.get(key);
      if (list) list.push(slice);
      else slicesByService.set(key, [slice]);
    }
    return {
      services: (services ?? []) as Service[],
      slicesByService,
      nodes: nodes ? new Map((nodes as Node[]).map((n) => [n.metadata?.name ?? "", n])) : undefined,
    };
  }

  /** The Service and slices of one Service key, from the caches. */
  serviceView(key: string): { service: Service | undefined; slices: EndpointSlice[] } {
    const [namespace, name] = key.split("/") as [string, string];
    const service = this.watched[0]?.informer.get(name, namespace) as Service | undefined;
    const slices = ((this.watched[1]?.informer.list(namespace) ?? []) as EndpointSlice[]).filter(
      (s) => sliceServiceKey(s) === key,
    );
    return { service, slices };
  }

  nodes(): Map<string, Node> | undefined {
    const informer = this.nodeWatch?.informer;
    return informer
      ? new Map((informer.list() as Node[]).map((n) => [n.metadata?.name ?? "", n]))
      : undefined;
  }
}

/** One list of everything, for --once: no informers, no watch. */
export async function listOnce(kc: k8s.KubeConfig, needNodes: boolean): Promise<ClusterView> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const discovery = kc.makeApiClient(k8s.DiscoveryV1Api);
  const [services, slices, nodes] = await Promise.all([
    core.listServiceForAllNamespaces(),
    discovery.listEndpointSliceForAllNamespaces(),
    needNodes ? core.listNode() : Promise.resolve(undefined),
  ]);
  const slicesByService = new Map<string, EndpointSlice[]>();
  for (const slice of slices.items as EndpointSlice[]) {
    const key = sliceServiceKey(slice);
    if (key !== undefined) slicesByService.set(key, [...(slicesByService.get(key) ?? []), slice]);
  }
  return {
    services: services.items as Service[],
    slicesByService,
    nodes: nodes
      ? new Map((nodes.items as Node[]).map((n) => [n.metadata?.name ?? "", n]))
      : undefined,
  };
}
