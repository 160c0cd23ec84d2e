/**
 * The object store behind the Kubernetes API emulator: one resourceVersion counter for every
 * object, an event history that watches replay from, and compaction that makes an old
 * resourceVersion "too old" (410 Gone), as etcd does for the real API server.
 */

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    resourceVersion?: string;
    uid?: string;
    creationTimestamp?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    generation?: number;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

export interface Resource {
  /** Plural name in URLs: services, endpointslices, nodes, leases. */
  plural: string;
  kind: string;
  group: string;
  version: string;
  namespaced: boolean;
  shortNames?: string[];
}

export const RESOURCES: Resource[] = [
  {
    plural: "services",
    kind: "Service",
    group: "",
    version: "v1",
    namespaced: true,
    shortNames: ["svc"],
  },
  {
    plural: "nodes",
    kind: "Node",
    group: "",
    version: "v1",
    namespaced: false,
    shortNames: ["no"],
  },
  {
    plural: "endpointslices",
    kind: "EndpointSlice",
    group: "discovery.k8s.io",
    version: "v1",
    namespaced: true,
  },
  {
    plural: "leases",
    kind: "Lease",
    group: "coordination.k8s.io",
    version: "v1",
    namespaced: true,
  },
];

export function apiVersionOf(resource: Resource): string {
  return resource.group ? `${resource.group}/${resource.version}` : resource.version;
}

export type EventType = "ADDED" | "MODIFIED" | "DELETED";

export interface WatchEvent {
  type: EventType;
  resource: string;
  object: KubeObject;
  /** The object before a MODIFIED event (for selectors: it may have stopped matching). */
  previous?: KubeObject;
  resourceVersion: number;
}

export class StoreError extends Error {
  readonly code: number;
  readonly reason: string;
  constructor(code: number, reason: string, message: string) {
    super(message);
    this.code = code;
    this.reason = reason;
  }
}

type Listener = (event: WatchEvent) => void;

function keyOf(namespace: string | undefined, name: string): string {
  return `${namespace ?? ""}/${name}`;
}

export class KubeStore {
  private revision = 0;
  /** Events with a resourceVersion at or below this are gone: older watches get 410. */
  private compacted = 0;
  private readonly objects = new Map<string, Map<string, KubeObject>>();
  private readonly history: WatchEvent[] = [];
  private readonly listeners = new Set<Listener>();

  constructor() {
    for (const resource of RESOURCES) this.objects.set(resource.plural, new Map());
  }

  get resourceVersion(): number {
    return this.revision;
  }

  private table(resource: string): Map<string, KubeObject> {
    const table = this.objects.get(resource);
    if (!table)
      throw new StoreError(
        404,
        "NotFound",
        `the server could not find the requested resource (${resource})`,
      );
    return table;
  }

  /** Resource versions at or below this were compacted away (watches and continue tokens: 410). */
  get compactedTo(): number {
    return this.compacted;
  }

  /**
   * Objects of a resource, sorted by namespace/name as the API server lists them, filtered.
   * Stored objects are never changed in place, so these references stay a consistent snapshot.
   */
  list(
    resource: string,
    namespace?: string,
    filter: (object: KubeObject) => boolean = () => true,
  ): KubeObject[] {
    return [...this.table(resource).entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, o]) => o)
      .filter((o) => (namespace === undefined || o.metadata.namespace === namespace) && filter(o));
  }

  has(resource: string, namespace: string | undefined, name: string): boolean {
    return this.table(resource).has(keyOf(namespace, name));
  }

  get(resource: string, namespace: string | undefined, name: string): KubeObject {
    const found = this.table(resource).get(keyOf(namespace, name));
    if (!found) throw new StoreError(404, "NotFound", `${resource} "${name}" not found`);
    return structuredClone(found);
  }

  private commit(type: EventType, resource: string, object: KubeObject): KubeObject {
    this.revision++;
    const stored = structuredClone(object);
    stored.metadata.resourceVersion = String(this.revision);
    const table = this.table(resource);
    const key = keyOf(stored.metadata.namespace, stored.metadata.name);
    const previous = table.get(key);
    if (type === "DELETED") table.delete(key);
    else table.set(key, stored);
    const event: WatchEvent = {
      type,
      resource,
      object: stored,
      ...(type === "MODIFIED" && previous ? { previous } : {}),
      resourceVersion: this.revision,
    };
    this.history.push(event);
    for (const listener of this.listeners) listener(event);
    return structuredClone(stored);
  }

  create(resource: string, object: KubeObject): KubeObject {
    const table = this.table(resource);
    if (table.has(keyOf(object.metadata.namespace, object.metadata.name))) {
      throw new StoreError(
        409,
        "AlreadyExists",
        `${resource} "${object.metadata.name}" already exists`,
      );
    }
    const created = structuredClone(object);
    created.metadata.uid ??= crypto.randomUUID();
    created.metadata.creationTimestamp ??= `${new Date().toISOString().slice(0, 19)}Z`;
    delete created.kind;
    delete created.apiVersion;
    return this.commit("ADDED", resource, created);
  }

  /** Replaces an object; a stale `metadata.resourceVersion` is a 409 Conflict. */
  replace(resource: string, object: KubeObject): KubeObject {
    const current = this.get(resource, object.metadata.namespace, object.metadata.name);
    const expected = object.metadata.resourceVersion;
    if (expected !== undefined && expected !== current.metadata.resourceVersion) {
      throw new StoreError(
        409,
        "Conflict",
        `Operation cannot be fulfilled on ${resource} "${object.metadata.name}": the object has been modified; please apply your changes to the latest version and try again`,
      );
    }
    const next = structuredClone(object);
    next.metadata.uid = current.metadata.uid;
    next.metadata.creationTimestamp = current.metadata.creationTimestamp;
    delete next.kind;
    delete next.apiVersion;
    return this.commit("MODIFIED", resource, next);
  }

  /** Creates or replaces, ignoring resourceVersion: for tests and the demo. */
  apply(resource: string, object: KubeObject): KubeObject {
    const exists = this.table(resource).has(keyOf(object.metadata.namespace, object.metadata.name));
    if (!exists) return this.create(resource, object);
    const next = structuredClone(object);
    delete next.metadata.resourceVersion;
    return this.replace(resource, next);
  }

  delete(resource: string, namespace: string | undefined, name: string): KubeObject {
    const current = this.get(resource, namespace, name);
    return this.commit("DELETED", resource, current);
  }

  /** Forgets history up to now: a watch from an older resourceVersion gets 410 Gone. */
  compact(): void {
    this.compacted = this.revision;
    this.history.length = 0;
  }

  /**
   * Events after `resourceVersion` for a resource, or `undefined` when they were compacted away.
   */
  since(resource: string, resourceVersion: number): WatchEvent[] | undefined {
    if (resourceVersion < this.compacted) return undefined;
    return this.history.filter(
      (e) => e.resource === resource && e.resourceVersion > resourceVersion,
    );
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
