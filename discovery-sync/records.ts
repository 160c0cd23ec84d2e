import {
  DEFAULT_URL_TEMPLATE,
  type Detail,
  type EndpointRecord,
  type EndpointSlice,
  type Node,
  type NodeRecord,
  PUBLISH_ANNOTATION,
  SERVICE_NAME_LABEL,
  type Service,
  type ServiceRecord,
  type SliceEndpoint,
  type SliceRecord,
  TRANSPORT_BINDING_ANNOTATION,
  URL_TEMPLATE_ANNOTATION,
} from "./model.ts";
import { placeholdersOf } from "./template.ts";

/**
 * Objects → records (pure): what the caches keep of each Service, EndpointSlice and Node. A real
 * object carries managedFields, a last-applied-configuration annotation, a dozen labels, owner
 * references and per-endpoint hints; a record keeps only what the desired stage reads, with the
 * strings that repeat (namespaces, node names, zones) shared through an intern table.
 */

export interface Selection {
  /** Label selector (equality terms); without it, the publish annotation selects. */
  serviceSelector?: string;
  /**
   * Which namespaces may steer where a pool points. Annotations are written by whoever may edit
   * a Service; by default no namespace may set a URL template or a transport binding.
   */
  trust?: AnnotationTrust;
}

export interface AnnotationTrust {
  /** Namespaces whose Services may set switchyard.dev/url-template; "*" for all. */
  templates: readonly string[];
  /** `namespace=BINDING` pairs a Service may name in switchyard.dev/transport-binding; "*" for any namespace. */
  bindings: readonly string[];
  /** Namespaces whose ExternalName Services are published; "*" for all. */
  externalNames?: readonly string[];
}

const NO_TRUST: AnnotationTrust = { templates: [], bindings: [], externalNames: [] };

function mayUseTemplate(trust: AnnotationTrust, namespace: string): boolean {
  return trust.templates.includes("*") || trust.templates.includes(namespace);
}

function mayUseBinding(trust: AnnotationTrust, namespace: string, binding: string): boolean {
  return (
    trust.bindings.includes(`*=${binding}`) || trust.bindings.includes(`${namespace}=${binding}`)
  );
}

function selectorMatches(labels: Record<string, string> | undefined, selector: string): boolean {
  const have = labels ?? {};
  return selector
    .split(",")
    .map((t) => t.trim())
    .filter(Boolean)
    .every((term) => {
      if (term.startsWith("!")) return !Object.hasOwn(have, term.slice(1));
      const ne = term.indexOf("!=");
      if (ne !== -1) return have[term.slice(0, ne).trim()] !== term.slice(ne + 2).trim();
      const eq = term.indexOf("=");
      if (eq === -1) return Object.hasOwn(have, term);
      const value = term.slice(term[eq + 1] === "=" ? eq + 2 : eq + 1).trim();
      const key = term.slice(0, eq).trim();
      return Object.hasOwn(have, key) && have[key] === value;
    });
}

function isSelected(service: Service, selection: Selection): boolean {
  if (selection.serviceSelector !== undefined)
    return selectorMatches(service.metadata?.labels, selection.serviceSelector);
  return service.metadata?.annotations?.[PUBLISH_ANNOTATION] === "true";
}

/** Shares repeated strings between records. */
export class Interner {
  private readonly table = new Map<string, string>();
  of(text: string): string;
  of(text: string | undefined): string | undefined;
  of(text: string | undefined): string | undefined {
    if (text === undefined) return undefined;
    const found = this.table.get(text);
    if (found !== undefined) return found;
    if (this.table.size < 100_000) this.table.set(text, text);
    return text;
  }
}

const noInterning = { of: <T>(text: T) => text } as unknown as Interner;

/** The record of a selected Service; undefined when the Service is not selected. */
export function serviceRecord(
  service: Service,
  selection: Selection,
  intern: Interner = noInterning,
): ServiceRecord | undefined {
  if (!isSelected(service, selection)) return undefined;
  const annotations = service.metadata?.annotations ?? {};
  const spec = service.spec ?? {};
  const record: ServiceRecord = {
    namespace: intern.of(service.metadata?.namespace ?? ""),
    name: service.metadata?.name ?? "",
    type: intern.of(spec.type ?? "ClusterIP"),
    ports: (spec.ports ?? []).map((p) => ({
      ...(p.name ? { name: intern.of(p.name) } : {}),
      port: p.port,
      protocol: intern.of(p.protocol ?? "TCP"),
      ...(p.nodePort ? { nodePort: p.nodePort } : {}),
      ...(p.appProtocol ? { appProtocol: intern.of(p.appProtocol) } : {}),
    })),
  };
  const trust = selection.trust ?? NO_TRUST;
  const externalNames = trust.externalNames ?? [];
  if (externalNames.includes("*") || externalNames.includes(record.namespace))
    record.externalTrusted = true;
  if (spec.type === "ExternalName" && spec.externalName) {
    // An ExternalName can name any host, a cloud's metadata service among them: published only
    // from namespaces the operator trusts with it, as Contour and Traefik do.
    if (record.externalTrusted) record.externalName = spec.externalName;
    else
      record.refused = `an ExternalName Service is not allowed in namespace ${record.namespace} (--allow-external-name)`;
  }
  const family = spec.ipFamilies?.[0];
  if (family) record.ipFamily = intern.of(family);
  const template = annotations[URL_TEMPLATE_ANNOTATION];
  if (template !== undefined) {
    if (mayUseTemplate(trust, record.namespace)) record.template = intern.of(template);
    else
      record.refused = `${URL_TEMPLATE_ANNOTATION} is not allowed in namespace ${record.namespace} (--allow-url-template)`;
  }
  const binding = annotations[TRANSPORT_BINDING_ANNOTATION];
  if (binding !== undefined) {
    if (mayUseBinding(trust, record.namespace, binding)) record.binding = intern.of(binding);
    else
      record.refused ??= `${TRANSPORT_BINDING_ANNOTATION} ${binding} is not allowed in namespace ${record.namespace} (--allow-transport-binding)`;
  }
  return record;
}

/** Conditions: nil ready = true, nil serving = ready, nil terminating = false. */
function endpointState(endpoint: SliceEndpoint): EndpointRecord["state"] | undefined {
  const ready = endpoint.conditions?.ready ?? true;
  const serving = endpoint.conditions?.serving ?? ready;
  const terminating = endpoint.conditions?.terminating ?? false;
  if (ready) return "ready";
  if (serving && terminating) return "draining";
  return undefined;
}

const FULL_DETAIL: Detail = { endpoints: true, node: true, pod: true };

/** The Detail a Service's template needs; none for a Service that is not selected. */
export function detailFor(service: ServiceRecord | undefined): Detail {
  if (service === undefined) return { endpoints: false, node: false, pod: false };
  const { used } = placeholdersOf(service.template ?? DEFAULT_URL_TEMPLATE);
  return { endpoints: true, node: used.has("node") || used.has("nodePort"), pod: used.has("pod") };
}

export function detailCode(detail: Detail): string {
  return `${detail.endpoints ? "e" : ""}${detail.node ? "n" : ""}${detail.pod ? "p" : ""}`;
}

/** The record of an EndpointSlice, keeping what `detail` says; undefined when it has no Service. */
export function sliceRecord(
  slice: EndpointSlice,
  intern: Interner = noInterning,
  detail: Detail = FULL_DETAIL,
): SliceRecord | undefined {
  const service = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
  if (service === undefined) return undefined;
  const endpoints: EndpointRecord[] = [];
  for (const endpoint of detail.endpoints ? (slice.endpoints ?? []) : []) {
    const state = endpointState(endpoint);
    const address = endpoint.addresses?.[0];
    if (state === undefined || address === undefined) continue;
    endpoints.push({
      address,
      state,
      nodeName: detail.node ? intern.of(endpoint.nodeName || undefined) : undefined,
      zone: intern.of(endpoint.zone || undefined),
      pod: detail.pod ? endpoint.targetRef?.name || undefined : undefined,
    });
  }
  return {
    namespace: intern.of(slice.metadata?.namespace ?? ""),
    name: slice.metadata?.name ?? "",
    service: intern.of(service),
    addressType: intern.of(slice.addressType),
    ports: (slice.ports ?? [])
      .filter((p) => typeof p.port === "number" && (p.protocol ?? "TCP") === "TCP")
      .map((p) => ({
        name: intern.of(p.name ?? ""),
        port: p.port as number,
        appProtocol: intern.of(p.appProtocol || undefined),
      })),
    endpoints,
    detail: detailCode(detail),
  };
}

export function nodeRecord(node: Node): NodeRecord {
  const ready = node.status?.conditions?.find((c) => c.type === "Ready");
  return { name: node.metadata?.name ?? "", ready: ready === undefined || ready.status === "True" };
}

/** `namespace/service` of a slice record: the key slices are grouped by. */
export function sliceServiceKey(slice: SliceRecord): string {
  return `${slice.namespace}/${slice.service}`;
}

/** Two records say the same: a change that keeps the record equal is no signal. */
export function sameRecord(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
