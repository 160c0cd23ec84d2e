/**
 * The Kubernetes objects discovery-sync reads, reduced to the fields it uses. The informers'
 * typed objects (V1Service, V1EndpointSlice, V1Node) fit these shapes as they are.
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
}

export interface Service {
  metadata?: ObjectMeta;
  spec?: { ports?: ServicePort[]; type?: string };
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
  ports?: { name?: string | null; port?: number | null; protocol?: string | null }[] | null;
  endpoints?: SliceEndpoint[] | null;
}

export interface Node {
  metadata?: ObjectMeta;
  status?: { conditions?: { type: string; status: string }[] };
}

export const SERVICE_NAME_LABEL = "kubernetes.io/service-name";
export const PUBLISH_ANNOTATION = "switchyard.dev/publish";
export const URL_TEMPLATE_ANNOTATION = "switchyard.dev/url-template";
export const TRANSPORT_BINDING_ANNOTATION = "switchyard.dev/transport-binding";
export const DEFAULT_URL_TEMPLATE = "http://{ip}:{port}";

/** `namespace/name` of an object. */
export function objectKey(meta: ObjectMeta | undefined): string {
  return `${meta?.namespace ?? ""}/${meta?.name ?? ""}`;
}
