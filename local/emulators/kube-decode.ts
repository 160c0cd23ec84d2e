import type { KubeObject, Resource } from "./kube-store.ts";
import { apiVersionOf, StoreError } from "./kube-store.ts";

/**
 * Request bodies decoded as the API server decodes them, so that what it refuses is refused
 * here too: Go's JSON types (a number where a string belongs, a fraction in an int32), `Time`
 * (RFC 3339) and `MicroTime` (exactly six fractional digits: Go's layout
 * `2006-01-02T15:04:05.000000Z07:00`) — each a 400 BadRequest naming the field as the server
 * does; then validation — names (RFC 1123 subdomains, RFC 1035 labels for Services), required
 * fields, ranges, and a resourceVersion on every Lease update — each a 422 Invalid with its
 * causes. Unknown fields are dropped, as the server's default field validation does.
 */

type FieldType =
  | "string"
  | "intOrString"
  | "int32"
  | "bool"
  | "time"
  | "microtime"
  | "stringMap"
  | { go: string; fields: Record<string, FieldType> }
  | { array: FieldType };

const META: FieldType = {
  go: "ObjectMeta",
  fields: {
    name: "string",
    generateName: "string",
    namespace: "string",
    resourceVersion: "string",
    uid: "string",
    generation: "int32",
    creationTimestamp: "time",
    deletionTimestamp: "time",
    labels: "stringMap",
    annotations: "stringMap",
    finalizers: { array: "string" },
  },
};

const SCHEMAS: Record<string, FieldType> = {
  Lease: {
    go: "Lease",
    fields: {
      metadata: META,
      spec: {
        go: "LeaseSpec",
        fields: {
          holderIdentity: "string",
          leaseDurationSeconds: "int32",
          acquireTime: "microtime",
          renewTime: "microtime",
          leaseTransitions: "int32",
          strategy: "string",
          preferredHolder: "string",
        },
      },
    },
  },
  Service: {
    go: "Service",
    fields: {
      metadata: META,
      spec: {
        go: "ServiceSpec",
        fields: {
          type: "string",
          clusterIP: "string",
          clusterIPs: { array: "string" },
          externalName: "string",
          ipFamilies: { array: "string" },
          ipFamilyPolicy: "string",
          selector: "stringMap",
          ports: {
            array: {
              go: "ServicePort",
              fields: {
                name: "string",
                protocol: "string",
                appProtocol: "string",
                port: "int32",
                targetPort: "intOrString",
                nodePort: "int32",
              },
            },
          },
        },
      },
      status: { go: "ServiceStatus", fields: {} },
    },
  },
  EndpointSlice: {
    go: "EndpointSlice",
    fields: {
      metadata: META,
      addressType: "string",
      endpoints: {
        array: {
          go: "Endpoint",
          fields: {
            addresses: { array: "string" },
            conditions: {
              go: "EndpointConditions",
              fields: { ready: "bool", serving: "bool", terminating: "bool" },
            },
            hostname: "string",
            nodeName: "string",
            zone: "string",
            targetRef: {
              go: "ObjectReference",
              fields: { kind: "string", name: "string", namespace: "string", uid: "string" },
            },
          },
        },
      },
      ports: {
        array: {
          go: "EndpointPort",
          fields: { name: "string", protocol: "string", appProtocol: "string", port: "int32" },
        },
      },
    },
  },
  Node: {
    go: "Node",
    fields: {
      metadata: META,
      spec: { go: "NodeSpec", fields: {} },
      status: { go: "NodeStatus", fields: {} },
    },
  },
};

const MICRO_LAYOUT = "2006-01-02T15:04:05.000000Z07:00";
const TIME_LAYOUT = "2006-01-02T15:04:05Z07:00";
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}/;

/** Go's time.Parse error for a layout, close enough to the server's text. */
function timeError(text: string, layout: string): string {
  const head = DATE_TIME.exec(text);
  if (!head)
    return `parsing time ${JSON.stringify(text)} as ${JSON.stringify(layout)}: cannot parse ${JSON.stringify(text)} as "2006"`;
  const rest = text.slice(head[0].length);
  const expected = layout === MICRO_LAYOUT ? ".000000" : "Z07:00";
  return `parsing time ${JSON.stringify(text)} as ${JSON.stringify(layout)}: cannot parse ${JSON.stringify(rest)} as ${JSON.stringify(expected)}`;
}

function parseTime(text: string, micro: boolean): string | undefined {
  if (micro) {
    return /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$/.test(text) &&
      !Number.isNaN(Date.parse(text.replace(/(\.\d{3})\d{3}/, "$1")))
      ? text
      : undefined;
  }
  // Go's RFC 3339 parse accepts a fraction; Time is kept and written in whole seconds.
  const match = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.exec(text);
  if (!match || Number.isNaN(Date.parse(text))) return undefined;
  return `${new Date(Date.parse(text)).toISOString().slice(0, 19)}Z`;
}

function typeName(value: unknown): string {
  if (Array.isArray(value)) return "array";
  if (value === null) return "null";
  return typeof value === "object" ? "object" : typeof value;
}

const GO_TYPE: Record<string, string> = {
  string: "string",
  intOrString: "intstr.IntOrString",
  int32: "int32",
  bool: "bool",
  time: "v1.Time",
  microtime: "v1.MicroTime",
  stringMap: "map[string]string",
};

/** Decodes `value` against `type` in place; returns the decoded value or throws a 400. */
function decodeField(
  value: unknown,
  type: FieldType,
  path: string,
  owner: string,
  kind: string,
): unknown {
  const fail = (detail: string) =>
    new StoreError(
      400,
      "BadRequest",
      `${kind} in version "v1" cannot be handled as a ${kind}: ${detail}`,
    );
  const unmarshal = (goType: string) =>
    fail(
      `json: cannot unmarshal ${typeName(value) === "number" ? `number ${value}` : typeName(value)} into Go struct field ${owner}.${path} of type ${goType}`,
    );
  if (value === null) return undefined; // null is the zero value
  if (typeof type === "string") {
    switch (type) {
      case "string":
        if (typeof value !== "string") throw unmarshal("string");
        return value;
      case "bool":
        if (typeof value !== "boolean") throw unmarshal("bool");
        return value;
      case "intOrString":
        if (typeof value !== "string" && !(typeof value === "number" && Number.isInteger(value)))
          throw fail(
            `json: cannot unmarshal ${typeName(value)} into Go struct field ${owner}.${path} of type intstr.IntOrString`,
          );
        return value;
      case "int32":
        if (typeof value !== "number" || !Number.isInteger(value) || Math.abs(value) > 2 ** 31 - 1)
          throw unmarshal("int32");
        return value;
      case "time":
      case "microtime": {
        if (typeof value !== "string") throw unmarshal(GO_TYPE[type] as string);
        const parsed = parseTime(value, type === "microtime");
        if (parsed === undefined)
          throw fail(timeError(value, type === "microtime" ? MICRO_LAYOUT : TIME_LAYOUT));
        return parsed;
      }
      case "stringMap": {
        if (typeName(value) !== "object") throw unmarshal("map[string]string");
        for (const item of Object.values(value as object))
          if (typeof item !== "string")
            throw fail(
              `json: cannot unmarshal ${typeName(item)} into Go struct field ${owner}.${path} of type string`,
            );
        return value;
      }
    }
  }
  if ("array" in type) {
    if (!Array.isArray(value)) {
      const item = type.array;
      throw unmarshal(
        `[]${typeof item === "string" ? GO_TYPE[item] : "go" in item ? `v1.${item.go}` : "[]"}`,
      );
    }
    return value.map((item) => decodeField(item, type.array, path, owner, kind));
  }
  if (typeName(value) !== "object") throw unmarshal(`v1.${type.go}`);
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
    const fieldType = type.fields[key];
    if (fieldType === undefined) {
      // Unknown fields are dropped (kept for the types this emulator does not model).
      if (Object.keys(type.fields).length === 0) out[key] = item;
      continue;
    }
    // Go names the innermost struct and the whole JSON path: LeaseSpec.spec.renewTime.
    const decoded = decodeField(item, fieldType, path ? `${path}.${key}` : key, type.go, kind);
    if (decoded !== undefined) out[key] = decoded;
  }
  return out;
}

const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_1035 = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

interface Cause {
  reason: "FieldValueInvalid" | "FieldValueRequired";
  message: string;
  field: string;
}

export class InvalidError extends StoreError {
  readonly causes: Cause[];
  readonly name_: string;
  readonly resource: Resource;
  constructor(resource: Resource, name: string, causes: Cause[]) {
    const group = resource.group ? `.${resource.group}` : "";
    super(
      422,
      "Invalid",
      `${resource.kind}${group} ${JSON.stringify(name)} is invalid: ${causes.map((c) => `${c.field}: ${c.message}`).join(", ")}`,
    );
    this.causes = causes;
    this.name_ = name;
    this.resource = resource;
  }
}

function validate(resource: Resource, object: KubeObject, verb: "create" | "update"): void {
  const causes: Cause[] = [];
  const name = object.metadata.name;
  const invalid = (field: string, value: unknown, message: string) =>
    causes.push({
      reason: "FieldValueInvalid",
      field,
      message: `Invalid value: ${JSON.stringify(value)}: ${message}`,
    });
  const required = (field: string, message = "Required value") =>
    causes.push({ reason: "FieldValueRequired", field, message });
  if (!name) required("metadata.name", "Required value: name or generateName is required");
  else if (resource.kind === "Service") {
    if (name.length > 63 || !LABEL_1035.test(name))
      invalid(
        "metadata.name",
        name,
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
      );
  } else if (name.length > 253 || !SUBDOMAIN.test(name))
    invalid(
      "metadata.name",
      name,
      "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
    );
  if (
    resource.namespaced &&
    object.metadata.namespace &&
    !SUBDOMAIN.test(object.metadata.namespace)
  )
    invalid(
      "metadata.namespace",
      object.metadata.namespace,
      "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'",
    );
  if (verb === "update" && resource.kind === "Lease" && !object.metadata.resourceVersion)
    causes.push({
      reason: "FieldValueInvalid",
      field: "metadata.resourceVersion",
      message: "Invalid value: 0x0: must be specified for an update",
    });
  const spec = (object.spec ?? {}) as Record<string, unknown>;
  if (resource.kind === "Lease") {
    const duration = spec.leaseDurationSeconds as number | undefined;
    if (duration !== undefined && duration <= 0)
      invalid("spec.leaseDurationSeconds", duration, "must be greater than 0");
    const transitions = spec.leaseTransitions as number | undefined;
    if (transitions !== undefined && transitions < 0)
      invalid("spec.leaseTransitions", transitions, "must be greater than or equal to 0");
    if (spec.preferredHolder !== undefined && spec.strategy === undefined)
      invalid(
        "spec.preferredHolder",
        spec.preferredHolder,
        "preferredHolder is only allowed if strategy is set",
      );
  }
  if (resource.kind === "Service") {
    const ports = (spec.ports ?? []) as { port?: number }[];
    ports.forEach((port, i) => {
      if (port.port === undefined) required(`spec.ports[${i}].port`);
      else if (port.port < 1 || port.port > 65535)
        invalid(`spec.ports[${i}].port`, port.port, "must be between 1 and 65535, inclusive");
    });
  }
  if (resource.kind === "EndpointSlice") {
    if (!object.addressType) required("addressType");
    else if (!["IPv4", "IPv6", "FQDN"].includes(object.addressType as string))
      causes.push({
        reason: "FieldValueInvalid",
        field: "addressType",
        message: `Unsupported value: ${JSON.stringify(object.addressType)}: supported values: "FQDN", "IPv4", "IPv6"`,
      });
    ((object.endpoints ?? []) as { addresses?: string[] }[]).forEach((endpoint, i) => {
      if (!endpoint.addresses?.length)
        required(`endpoints[${i}].addresses`, "Required value: must contain at least 1 address");
    });
  }
  if (causes.length > 0) throw new InvalidError(resource, name ?? "", causes);
}

/**
 * The object of a POST (create) or PUT (update) body for `resource`, decoded and validated, or
 * a StoreError with the status the API server would answer.
 */
export function decodeBody(
  resource: Resource,
  text: string,
  verb: "create" | "update",
  urlNamespace: string | undefined,
  urlName: string | undefined,
): KubeObject {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new StoreError(
      400,
      "BadRequest",
      `couldn't get version/kind; json parse error: ${(error as Error).message}`,
    );
  }
  if (typeName(raw) !== "object")
    throw new StoreError(
      400,
      "BadRequest",
      `couldn't get version/kind; json parse error: json: cannot unmarshal ${typeName(raw)} into Go value of type struct { APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }`,
    );
  const body = raw as Record<string, unknown>;
  const expected = apiVersionOf(resource);
  if (body.apiVersion !== undefined && body.apiVersion !== expected)
    throw new StoreError(
      400,
      "BadRequest",
      `the API version in the data (${String(body.apiVersion)}) does not match the expected API version (${expected})`,
    );
  if (body.kind !== undefined && body.kind !== resource.kind)
    throw new StoreError(
      400,
      "BadRequest",
      `the kind in the data (${String(body.kind)}) does not match the expected kind (${resource.kind})`,
    );
  const schema = SCHEMAS[resource.kind];
  const decoded = (
    schema ? decodeField(body, schema, "", (schema as { go: string }).go, resource.kind) : body
  ) as KubeObject;
  decoded.metadata ??= { name: "" };
  delete decoded.apiVersion;
  delete decoded.kind;
  if (
    resource.namespaced &&
    decoded.metadata.namespace &&
    urlNamespace &&
    decoded.metadata.namespace !== urlNamespace
  )
    throw new StoreError(
      400,
      "BadRequest",
      "the namespace of the provided object does not match the namespace sent on the request",
    );
  if (urlName !== undefined && decoded.metadata.name && decoded.metadata.name !== urlName)
    throw new StoreError(
      400,
      "BadRequest",
      `the name of the object (${decoded.metadata.name}) does not match the name on the URL (${urlName})`,
    );
  if (urlName !== undefined) decoded.metadata.name ||= urlName;
  decoded.metadata.namespace = resource.namespaced
    ? (urlNamespace ?? decoded.metadata.namespace ?? "default")
    : undefined;
  validate(resource, decoded, verb);
  return decoded;
}
