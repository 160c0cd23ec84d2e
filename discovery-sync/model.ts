/**
 * The Kubernetes objects discovery-sync reads, as the API serves them (only the fields it uses
 * are named), and the records it keeps of them (records.ts): objects are reduced to records as
 * they arrive, so the caches hold a fraction of what the API sends.
 */

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface ServicePort {
  name?: string;
  port: number;
  protocol?: string;
  nodePort?: number;
  appProtocol?: string;
}

export interface Service {
  metadata?: ObjectMeta;
  spec?: {
    ports?: ServicePort[];
    type?: string;
    externalName?: string;
    clusterIP?: string;
    ipFamilies?: string[];
  };
}

export interface EndpointConditions {
  ready?: boolean | null;
  serving?: boolean | null;
  terminating?: boolean | null;
}

export interface SliceEndpoint {
  addresses: string[];
  conditions?: EndpointConditions;
  nodeName?: string;
  zone?: string;
  targetRef?: { name?: string; kind?: string };
}

export interface EndpointSlice {
  metadata?: ObjectMeta;
  addressType: string;
  ports?:
    | {
        name?: string | null;
        port?: number | null;
        protocol?: string | null;
        appProtocol?: string | null;
      }[]
    | null;
  endpoints?: SliceEndpoint[] | null;
}

export interface Node {
  metadata?: ObjectMeta;
  status?: { conditions?: { type: string; status: string }[] };
}

/** A selected Service as kept in the cache: only what the desired stage reads. */
export interface ServiceRecord {
  namespace: string;
  name: string;
  type: string;
  /** For ExternalName Services. */
  externalName?: string;
  /** The Service's primary IP family (first of spec.ipFamilies), when it says. */
  ipFamily?: string;
  ports: ServicePort[];
  template?: string;
  binding?: string;
  /** Why the Service's annotations may not be honoured: it is not published. */
  refused?: string;
  /** Its namespace may publish external names (--allow-external-name): FQDN slices too. */
  externalTrusted?: true;
}

/** Every field is always present (undefined when not kept), so records share one shape. */
export interface EndpointRecord {
  address: string;
  state: "ready" | "draining";
  nodeName: string | undefined;
  zone: string | undefined;
  pod: string | undefined;
}

/**
 * What a slice record keeps of its endpoints, by what its Service's URL template reads: nothing
 * for a Service that is not selected, node names only for {node}/{nodePort}, pod names only for
 * {pod}. A cluster's unpublished Services cost no endpoint records at all.
 */
export interface Detail {
  endpoints: boolean;
  node: boolean;
  pod: boolean;
}

/** An EndpointSlice as kept in the cache; endpoints that are not serving are left out. */
export interface SliceRecord {
  namespace: string;
  name: string;
  /** The Service it belongs to (its kubernetes.io/service-name label). */
  service: string;
  addressType: string;
  ports: { name: string; port: number; appProtocol: string | undefined }[];
  endpoints: EndpointRecord[];
  /** What was kept (see Detail), as a short code compared when a Service's needs change. */
  detail: string;
}

export interface NodeRecord {
  name: string;
  ready: boolean;
}

export const SERVICE_NAME_LABEL = "kubernetes.io/service-name";
export const PUBLISH_ANNOTATION = "switchyard.dev/publish";
export const URL_TEMPLATE_ANNOTATION = "switchyard.dev/url-template";
export const TRANSPORT_BINDING_ANNOTATION = "switchyard.dev/transport-binding";
export const DEFAULT_URL_TEMPLATE = "{scheme}://{ip}:{port}";
