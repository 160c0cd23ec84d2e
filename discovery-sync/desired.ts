import {
  endpointOrigin,
  originProblem,
  type PoolDocumentInput,
  poolKey,
} from "../contract/index.ts";
import {
  DEFAULT_URL_TEMPLATE,
  type NodeRecord,
  type ServicePort,
  type ServiceRecord,
  type SliceRecord,
  URL_TEMPLATE_ANNOTATION,
} from "./model.ts";
import { sliceServiceKey } from "./records.ts";
import { ipValue, placeholdersOf, render } from "./template.ts";

/**
 * The desired stage (pure): selected Services and their EndpointSlices, as records → pool
 * documents. One pool per TCP port of a Service, named
 * `[<cluster>/]<namespace>/<service>:<port name, or number when unnamed>`.
 *
 * - Slices join their Service by the `kubernetes.io/service-name` label; a slice's port is the
 *   one with the Service port's name, per slice (named target ports can differ between slices).
 * - A dual-stack Service has a slice per IP family: only those of its first `ipFamilies` entry
 *   (IPv4 when it does not say) are read, so each pod is published once.
 * - Ready endpoints are published; serving and terminating ones as `draining` (records.ts).
 * - `address:port` appears once across slices (the ready copy wins).
 * - URLs come from `switchyard.dev/url-template` (default `{scheme}://{ip}:{port}`); the scheme
 *   comes from the port's `appProtocol` (`https`, `kubernetes.io/wss` → https; none, `http`,
 *   `kubernetes.io/h2c`, `kubernetes.io/ws` → http). Endpoints whose node is known and not
 *   Ready are left out when the template names `{node}` or `{nodePort}`.
 * - An ExternalName Service is one endpoint per port at its external name (`{ip}`), from the
 *   namespaces `--allow-external-name` trusts (records.ts refuses the others).
 * - Link-local addresses (169.254.0.0/16, fe80::/10: cloud metadata) are never published.
 * - A Service with no slices at all is marked `noSlices`: the controller publishes it as an
 *   empty pool only after a grace period, so that slices being replaced never blank a pool.
 */

/** IPv4 169.254.0.0/16 and IPv6 fe80::/10: addresses no Service's pod has. */
const LINK_LOCAL = /^(169\.254\.|fe[89ab][0-9a-f]:)/i;

/** What the desired stage decides of a pool document: the rest is the plan's bookkeeping. */
export type PoolBody = Pick<PoolDocumentInput, "endpoints" | "transport">;

export interface DesiredPool {
  key: string;
  /** `namespace/name` of the Service. */
  service: string;
  body: PoolBody;
  /** The body's hash (plan.ts bodyHash), when already known. */
  hash?: string;
  /** The Service has no EndpointSlice at all (not even an empty one). */
  noSlices?: true;
}

export interface DesiredProblem {
  service: string;
  message: string;
}

export interface DesiredInput {
  cluster: string | undefined;
  /** Selected Services only (records.ts selects as it reduces). */
  services: Iterable<ServiceRecord>;
  /** EndpointSlices by `namespace/service name`. */
  slicesByService: ReadonlyMap<string, readonly SliceRecord[]>;
  /** Nodes by name; only consulted for templates that name {node} or {nodePort}. */
  nodes?: ReadonlyMap<string, NodeRecord>;
}

export function serviceKey(service: { namespace: string; name: string }): string {
  return `${service.namespace}/${service.name}`;
}

export function poolName(
  cluster: string | undefined,
  service: ServiceRecord,
  port: ServicePort | { name: string; port?: undefined },
): string {
  const name = `${service.namespace}/${service.name}:${port.name || port.port}`;
  return cluster ? `${cluster}/${name}` : name;
}

const HTTPS = new Set(["https", "wss", "kubernetes.io/wss"]);
const HTTP = new Set(["http", "h2c", "ws", "kubernetes.io/h2c", "kubernetes.io/ws"]);

/** The URL scheme of an appProtocol, and whether Switchyard knows it. */
function schemeOf(appProtocol: string | undefined): { scheme: string; known: boolean } {
  if (appProtocol === undefined) return { scheme: "http", known: true };
  const name = appProtocol.toLowerCase();
  if (HTTPS.has(name)) return { scheme: "https", known: true };
  return { scheme: "http", known: HTTP.has(name) };
}

/** The slices of the Service's primary IP family (IPv4 when it does not say), and FQDN ones. */
function primaryFamily(
  service: ServiceRecord,
  slices: readonly SliceRecord[],
): readonly SliceRecord[] {
  const family = service.ipFamily ?? "IPv4";
  const hasFamily = slices.some((s) => s.addressType === family);
  return slices.filter(
    (s) =>
      (s.addressType !== "IPv4" && s.addressType !== "IPv6") ||
      s.addressType === family ||
      !hasFamily,
  );
}

interface Found {
  url: string;
  state: "ready" | "draining";
  zone: string | undefined;
}

type Result = { pools: DesiredPool[]; problems: DesiredProblem[] };

function externalNamePools(
  service: ServiceRecord,
  template: string,
  cluster: string | undefined,
): Result {
  const id = serviceKey(service);
  const problems: DesiredProblem[] = [];
  const pools: DesiredPool[] = [];
  const ports: (ServicePort | { name: string; port?: undefined })[] = service.ports.filter(
    (p) => (p.protocol ?? "TCP") === "TCP",
  );
  if (ports.length === 0) {
    if (placeholdersOf(template).used.has("port")) {
      problems.push({
        service: id,
        message: `an ExternalName Service needs a port, or a ${URL_TEMPLATE_ANNOTATION} without {port}; not published`,
      });
      return { pools, problems };
    }
    ports.push({ name: "default" });
  }
  for (const port of ports) {
    const rendered = render(template, {
      scheme: schemeOf(port.port === undefined ? undefined : (port as ServicePort).appProtocol)
        .scheme,
      ip: service.externalName,
      port: port.port,
      namespace: service.namespace,
      service: service.name,
    });
    const url = "url" in rendered ? endpointOrigin(rendered.url) : undefined;
    const problem =
      url === undefined
        ? `no value for {${(rendered as { missing: string }).missing}}`
        : originProblem(url);
    if (problem || url === undefined) {
      problems.push({
        service: id,
        message: `port ${port.name || port.port}: ${problem}; not published`,
      });
      continue;
    }
    const body: PoolBody = service.binding
      ? { endpoints: [{ url }], transport: { binding: service.binding } }
      : { endpoints: [{ url }] };
    pools.push({ key: poolKey(poolName(cluster, service, port)), service: id, body });
  }
  return { pools, problems };
}

/** The pools of one Service; problems say what was left out and why. */
export function desiredForService(
  service: ServiceRecord,
  allSlices: readonly SliceRecord[],
  cluster: string | undefined,
  nodes: ReadonlyMap<string, NodeRecord> | undefined,
): Result {
  const id = serviceKey(service);
  const template = service.template ?? DEFAULT_URL_TEMPLATE;
  const problems: DesiredProblem[] = [];
  const { used, unknown } = placeholdersOf(template);
  if (service.refused !== undefined) {
    problems.push({ service: id, message: `${service.refused}; not published` });
    return { pools: [], problems };
  }
  if (unknown.length > 0) {
    problems.push({
      service: id,
      message: `${URL_TEMPLATE_ANNOTATION}: unknown placeholder ${unknown.map((u) => `{${u}}`).join(", ")}; not published`,
    });
    return { pools: [], problems };
  }
  if (service.type === "ExternalName") return externalNamePools(service, template, cluster);
  const slices = primaryFamily(service, allSlices);
  const binding = service.binding;
  const checkNodes = nodes !== undefined && (used.has("node") || used.has("nodePort"));
  const pools: DesiredPool[] = [];
  for (const port of service.ports) {
    if ((port.protocol ?? "TCP") !== "TCP") continue;
    const found = new Map<string, Found>();
    const byAddress = new Map<string, Found>();
    let skipped: string | undefined;
    for (const slice of slices) {
      const slicePort = slice.ports.find((p) => p.name === (port.name ?? ""));
      if (!slicePort) continue;
      const protocol = port.appProtocol ?? slicePort.appProtocol;
      const { scheme, known } = schemeOf(protocol);
      if (!known)
        skipped ??= `appProtocol ${JSON.stringify(protocol)} is not one Switchyard knows; published as http`;
      // A hand-made FQDN slice names hosts as an ExternalName does: only where trusted.
      if (slice.addressType === "FQDN" && !service.externalTrusted) {
        skipped ??=
          "an FQDN EndpointSlice names external hosts, not allowed in this namespace (--allow-external-name); left out";
        continue;
      }
      for (const endpoint of slice.endpoints) {
        if (LINK_LOCAL.test(endpoint.address)) {
          // A cloud's metadata service (169.254.169.254) lives there: no pod does.
          skipped ??= `address ${endpoint.address} is link-local (where cloud metadata services answer); such endpoints are left out`;
          continue;
        }
        if (checkNodes && endpoint.nodeName !== undefined) {
          const node = nodes.get(endpoint.nodeName);
          if (node !== undefined && !node.ready) continue;
        }
        const rendered = render(template, {
          scheme,
          ip: ipValue(endpoint.address, slice.addressType),
          port: slicePort.port,
          pod: endpoint.pod,
          node: endpoint.nodeName,
          nodePort: port.nodePort,
          zone: endpoint.zone,
          namespace: service.namespace,
          service: service.name,
        });
        if ("missing" in rendered) {
          skipped ??= `an endpoint has no value for {${rendered.missing}}; such endpoints are left out`;
          continue;
        }
        const problem = originProblem(rendered.url);
        if (problem) {
          skipped ??= `rendered URL ${JSON.stringify(rendered.url)} ${problem}; such endpoints are left out`;
          continue;
        }
        const url = endpointOrigin(rendered.url);
        const addressKey = `${endpoint.address}:${slicePort.port}`;
        const seen = byAddress.get(addressKey) ?? found.get(url);
        if (seen) {
          if (seen.state === "draining" && endpoint.state === "ready") seen.state = "ready";
          continue;
        }
        const entry = { url, state: endpoint.state, zone: endpoint.zone };
        byAddress.set(addressKey, entry);
        found.set(url, entry);
      }
    }
    if (skipped)
      problems.push({ service: id, message: `port ${port.name || port.port}: ${skipped}` });
    const endpoints = [...found.values()]
      .sort((a, b) => (a.url < b.url ? -1 : a.url > b.url ? 1 : 0))
      // weight 1 and state "ready" are the pool document's defaults: left out.
      .map((e) => ({
        url: e.url,
        ...(e.state === "draining" ? { state: e.state } : {}),
        ...(e.zone === undefined ? {} : { zone: e.zone }),
      }));
    const body: PoolBody = binding ? { endpoints, transport: { binding } } : { endpoints };
    pools.push({
      key: poolKey(poolName(cluster, service, port)),
      service: id,
      body,
      ...(allSlices.length === 0 ? { noSlices: true as const } : {}),
    });
  }
  return { pools, problems };
}

/** Every selected Service's pools, by KV key. */
export function desiredState(input: DesiredInput): {
  pools: Map<string, DesiredPool>;
  problems: DesiredProblem[];
} {
  const pools = new Map<string, DesiredPool>();
  const problems: DesiredProblem[] = [];
  for (const service of input.services) {
    const slices = input.slicesByService.get(serviceKey(service)) ?? [];
    const result = desiredForService(service, slices, input.cluster, input.nodes);
    for (const pool of result.pools) pools.set(pool.key, pool);
    problems.push(...result.problems);
  }
  return { pools, problems };
}

/** Slice records grouped by their Service's key. */
export function groupSlices(slices: Iterable<SliceRecord>): Map<string, SliceRecord[]> {
  const index = new Map<string, SliceRecord[]>();
  for (const slice of slices) {
    const key = sliceServiceKey(slice);
    const list = index.get(key);
    if (list) list.push(slice);
    else index.set(key, [slice]);
  }
  return index;
}
