import { originProblem, type PoolDocument, poolKey } from "../contract/index.ts";
import {
  DEFAULT_URL_TEMPLATE,
  type EndpointSlice,
  type Node,
  objectKey,
  PUBLISH_ANNOTATION,
  SERVICE_NAME_LABEL,
  type Service,
  type ServicePort,
  type SliceEndpoint,
  TRANSPORT_BINDING_ANNOTATION,
  URL_TEMPLATE_ANNOTATION,
} from "./model.ts";
import { ipValue, placeholdersOf, render } from "./template.ts";

/**
 * The desired stage (pure): selected Services and their EndpointSlices → pool documents, with
 * the EndpointSlice rules of DESIGN §7. One pool per TCP port of a Service, named
 * `[<cluster>/]<namespace>/<service>:<port name, or number when unnamed>`.
 *
 * - Slices join their Service by the `kubernetes.io/service-name` label; a slice's port is the
 *   one with the Service port's name, per slice (named target ports can differ between slices).
 * - Conditions: nil ready = true, nil serving = ready, nil terminating = false. Ready endpoints
 *   are published; serving and terminating ones as `draining`; not-serving ones not at all.
 * - `address:port` appears once across slices (the ready copy wins).
 * - URLs come from `switchyard.dev/url-template` (default `http://{ip}:{port}`); endpoints whose
 *   node is known and not Ready are left out when the template names `{node}` or `{nodePort}`.
 */

export type PoolBody = {
  endpoints: { url: string; state?: "draining"; zone?: string }[];
  transport?: PoolDocument["transport"];
};

export interface DesiredPool {
  key: string;
  /** `namespace/name` of the Service. */
  service: string;
  body: PoolBody;
  /** The body's hash (plan.ts bodyHash), when already known. */
  hash?: string;
}

export interface DesiredProblem {
  service: string;
  message: string;
}

export interface Selection {
  /** Label selector (equality terms); without it, the publish annotation selects. */
  serviceSelector?: string;
}

export interface DesiredInput {
  cluster: string | undefined;
  selection: Selection;
  services: Iterable<Service>;
  /** EndpointSlices by `namespace/service name`. */
  slicesByService: ReadonlyMap<string, readonly EndpointSlice[]>;
  /** Nodes by name; only consulted for templates that name {node} or {nodePort}. */
  nodes?: ReadonlyMap<string, Node>;
}

export function selectorMatches(
  labels: Record<string, string> | undefined,
  selector: string,
): boolean {
  const have = labels ?? {};
  return selector
    .split(",")
    .map((t) => t.trim())
    .filter(Boolean)
    .every((term) => {
      if (term.startsWith("!")) return !(term.slice(1) in have);
      const ne = term.indexOf("!=");
      if (ne !== -1) return have[term.slice(0, ne).trim()] !== term.slice(ne + 2).trim();
      const eq = term.indexOf("=");
      if (eq === -1) return term in have;
      const value = term.slice(term[eq + 1] === "=" ? eq + 2 : eq + 1).trim();
      return have[term.slice(0, eq).trim()] === value;
    });
}

export function isSelected(service: Service, selection: Selection): boolean {
  if (selection.serviceSelector !== undefined)
    return selectorMatches(service.metadata?.labels, selection.serviceSelector);
  return service.metadata?.annotations?.[PUBLISH_ANNOTATION] === "true";
}

/** The key of the slices' index: the Service a slice belongs to. */
export function sliceServiceKey(slice: EndpointSlice): string | undefined {
  const service = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
  return service === undefined ? undefined : `${slice.metadata?.namespace ?? ""}/${service}`;
}

export function poolName(cluster: string | undefined, service: Service, port: ServicePort): string {
  const name = `${service.metadata?.namespace}/${service.metadata?.name}:${port.name || port.port}`;
  return cluster ? `${cluster}/${name}` : name;
}

type State = "ready" | "draining" | undefined;

function stateOf(endpoint: SliceEndpoint): State {
  const ready = endpoint.conditions?.ready ?? true;
  const serving = endpoint.conditions?.serving ?? ready;
  const terminating = endpoint.conditions?.terminating ?? false;
  if (ready) return "ready";
  if (serving && terminating) return "draining";
  return undefined;
}

function nodeReady(node: Node | undefined): boolean {
  const ready = node?.status?.conditions?.find((c) => c.type === "Ready");
  return ready === undefined || ready.status === "True";
}

interface Found {
  url: string;
  state: "ready" | "draining";
  zone: string | undefined;
}

/** The pools of one Service; problems say what was left out and why. */
export function desiredForService(
  service: Service,
  slices: readonly EndpointSlice[],
  cluster: string | undefined,
  nodes: ReadonlyMap<string, Node> | undefined,
): { pools: DesiredPool[]; problems: DesiredProblem[] } {
  const id = objectKey(service.metadata);
  const annotations = service.metadata?.annotations ?? {};
  const template = annotations[URL_TEMPLATE_ANNOTATION] ?? DEFAULT_URL_TEMPLATE;
  const problems: DesiredProblem[] = [];
  const { used, unknown } = placeholdersOf(template);
  if (unknown.length > 0) {
    problems.push({
      service: id,
      message: `${URL_TEMPLATE_ANNOTATION}: unknown placeholder ${unknown.map((u) => `{${u}}`).join(", ")}; not published`,
    });
    return { pools: [], problems };
  }
  const binding = annotations[TRANSPORT_BINDING_ANNOTATION];
  const checkNodes = nodes !== undefined && (used.has("node") || used.has("nodePort"));
  const pools: DesiredPool[] = [];
  for (const port of service.spec?.ports ?? []) {
    if ((port.protocol ?? "TCP") !== "TCP") continue;
    const found = new Map<string, Found>();
    const byAddress = new Map<string, Found>();
    let skipped: string | undefined;
    for (const slice of slices) {
      const slicePort = (slice.ports ?? []).find((p) => (p.name ?? "") === (port.name ?? ""));
      if (!slicePort?.port) continue;
      for (const endpoint of slice.endpoints ?? []) {
        const state = stateOf(endpoint);
        const address = endpoint.addresses[0];
        if (state === undefined || address === undefined) continue;
        if (
          checkNodes &&
          endpoint.nodeName !== undefined &&
          !nodeReady(nodes.get(endpoint.nodeName))
        )
          continue;
        const rendered = render(template, {
          ip: ipValue(address, slice.addressType),
          port: slicePort.port,
          pod: endpoint.targetRef?.name,
          node: endpoint.nodeName,
          nodePort: port.nodePort,
          zone: endpoint.zone,
          namespace: service.metadata?.namespace,
          service: service.metadata?.name,
        });
        if ("missing" in rendered) {
          skipped ??= `an endpoint has no value for {${rendered.missing}}`;
          continue;
        }
        const problem = originProblem(rendered.url);
        if (problem) {
          skipped ??= `rendered URL ${JSON.stringify(rendered.url)} ${problem}`;
          continue;
        }
        const url = rendered.url.endsWith("/") ? rendered.url.slice(0, -1) : rendered.url;
        const addressKey = `${address}:${slicePort.port}`;
        const seen = byAddress.get(addressKey) ?? found.get(url);
        if (seen) {
          if (seen.state === "draining" && state === "ready") seen.state = "ready";
          continue;
        }
        const entry = { url, state, zone: endpoint.zone };
        byAddress.set(addressKey, entry);
        found.set(url, entry);
      }
    }
    if (skipped)
      problems.push({
        service: id,
        message: `port ${port.name || port.port}: ${skipped}; such endpoints are left out`,
      });
    const endpoints = [...found.values()]
      .sort((a, b) => (a.url < b.url ? -1 : a.url > b.url ? 1 : 0))
      // weight 1 and state "ready" are the defaults: left out, as DESIGN §7 allows.
      .map((e) => ({
        url: e.url,
        ...(e.state === "draining" ? { state: e.state } : {}),
        ...(e.zone === undefined ? {} : { zone: e.zone }),
      }));
    const body: PoolBody = binding ? { endpoints, transport: { binding } } : { endpoints };
    pools.push({ key: poolKey(poolName(cluster, service, port)), service: id, body });
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
    if (!isSelected(service, input.selection)) continue;
    const slices = input.slicesByService.get(objectKey(service.metadata)) ?? [];
    const result = desiredForService(service, slices, input.cluster, input.nodes);
    for (const pool of result.pools) pools.set(pool.key, pool);
    problems.push(...result.problems);
  }
  return { pools, problems };
}
