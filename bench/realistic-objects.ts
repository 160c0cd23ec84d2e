/**
 * Services and EndpointSlices as a real cluster serves them (Helm-installed apps behind
 * Deployments): managedFields of two managers, a dozen Helm and app labels, the
 * kubectl.kubernetes.io/last-applied-configuration annotation, ownerReferences, the object
 * metadata the API server adds (uid, resourceVersion, creationTimestamp), and per endpoint a
 * targetRef, nodeName, hostname, zone and topology hints. About 3.6 KB a Service and 5.2 KB a
 * 10-endpoint slice as JSON, like the objects the API server sends.
 */

const ZONES = ["eu-west-1a", "eu-west-1b", "eu-west-1c"];

function labels(app: string, i: number): Record<string, string> {
  return {
    "app.kubernetes.io/name": app,
    "app.kubernetes.io/instance": `${app}-prod`,
    "app.kubernetes.io/version": `1.${i % 40}.${i % 7}`,
    "app.kubernetes.io/component": "server",
    "app.kubernetes.io/part-of": `platform-${i % 20}`,
    "app.kubernetes.io/managed-by": "Helm",
    "helm.sh/chart": `${app}-chart-4.${i % 9}.0`,
    "team.example.com/owner": `team-${i % 30}`,
    "team.example.com/cost-center": `cc-${1000 + (i % 97)}`,
    "example.com/environment": "production",
    "example.com/tier": i % 3 === 0 ? "frontend" : "backend",
    "example.com/release-channel": "stable",
  };
}

function managedFields(manager: string, fields: unknown, time: string) {
  return {
    manager,
    operation: "Update",
    apiVersion: "v1",
    time,
    fieldsType: "FieldsV1",
    fieldsV1: fields,
  };
}

const TIME = "2026-10-01T08:00:00Z";

/** What the API server adds to every object's metadata. */
function serverMetadata(kind: string, i: number) {
  return {
    uid: `${kind}${String(i).padStart(8, "0")}-7c1d-4e2f-8a3b-${String(i).padStart(12, "0")}`,
    resourceVersion: String(100_000_000 + i),
    creationTimestamp: TIME,
  };
}

export function realisticService(namespace: string, name: string, i: number, published: boolean) {
  const app = name;
  const metaLabels = labels(app, i);
  const spec = {
    type: "ClusterIP",
    clusterIP: `172.20.${Math.floor(i / 250) % 250}.${(i % 250) + 1}`,
    clusterIPs: [`172.20.${Math.floor(i / 250) % 250}.${(i % 250) + 1}`],
    ipFamilies: ["IPv4"],
    ipFamilyPolicy: "SingleStack",
    internalTrafficPolicy: "Cluster",
    sessionAffinity: "None",
    selector: { "app.kubernetes.io/name": app, "app.kubernetes.io/instance": `${app}-prod` },
    ports: [{ name: "http", port: 80, protocol: "TCP", targetPort: "http" }],
  };
  const annotations: Record<string, string> = {
    "meta.helm.sh/release-name": `${app}-prod`,
    "meta.helm.sh/release-namespace": namespace,
    "kubectl.kubernetes.io/last-applied-configuration": JSON.stringify({
      apiVersion: "v1",
      kind: "Service",
      metadata: {
        name,
        namespace,
        labels: metaLabels,
        annotations: { "meta.helm.sh/release-name": `${app}-prod` },
      },
      spec: { ...spec, clusterIP: undefined, clusterIPs: undefined },
    }),
  };
  annotations["prometheus.io/scrape"] = "true";
  annotations["prometheus.io/port"] = "9090";
  annotations["checksum/config"] = (i * 2654435761).toString(16).padStart(64, "0");
  annotations["team.example.com/runbook"] =
    `https://runbooks.example.com/platform-${i % 20}/${app}/service-unavailable-and-latency-alerts`;
  if (published) annotations["switchyard.dev/publish"] = "true";
  return {
    metadata: {
      name,
      namespace,
      ...serverMetadata("5e1f", i),
      labels: metaLabels,
      annotations,
      managedFields: [
        managedFields(
          "helm",
          {
            "f:metadata": {
              "f:annotations": {
                ".": {},
                "f:meta.helm.sh/release-name": {},
                "f:meta.helm.sh/release-namespace": {},
              },
              "f:labels": Object.fromEntries(Object.keys(metaLabels).map((k) => [`f:${k}`, {}])),
            },
            "f:spec": {
              "f:internalTrafficPolicy": {},
              "f:ports": {
                ".": {},
                'k:{"port":80,"protocol":"TCP"}': {
                  ".": {},
                  "f:name": {},
                  "f:port": {},
                  "f:protocol": {},
                  "f:targetPort": {},
                },
              },
              "f:selector": {},
              "f:sessionAffinity": {},
              "f:type": {},
            },
          },
          TIME,
        ),
        managedFields(
          "kubectl-client-side-apply",
          {
            "f:metadata": {
              "f:annotations": { "f:kubectl.kubernetes.io/last-applied-configuration": {} },
            },
          },
          TIME,
        ),
      ],
    },
    spec,
    status: { loadBalancer: {} },
  };
}

export function realisticSlice(
  namespace: string,
  service: string,
  name: string,
  i: number,
  endpoints: number,
  firstAddress: number,
) {
  const app = service;
  return {
    addressType: "IPv4",
    metadata: {
      name,
      namespace,
      ...serverMetadata("e5a1", i),
      generation: 1,
      generateName: `${service}-`,
      labels: {
        ...labels(app, i),
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
        "kubernetes.io/service-name": service,
      },
      annotations: { "endpoints.kubernetes.io/last-change-trigger-time": TIME },
      ownerReferences: [
        {
          apiVersion: "v1",
          kind: "Service",
          name: service,
          uid: `0b6c${String(i).padStart(8, "0")}-1d2e-4f5a-9b8c-7d6e5f4a3b2c`,
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
      managedFields: [
        managedFields(
          "kube-controller-manager",
          {
            "f:addressType": {},
            "f:endpoints": {},
            "f:metadata": {
              "f:annotations": {
                ".": {},
                "f:endpoints.kubernetes.io/last-change-trigger-time": {},
              },
              "f:generateName": {},
              "f:labels": {
                ".": {},
                "f:endpointslice.kubernetes.io/managed-by": {},
                "f:kubernetes.io/service-name": {},
              },
              "f:ownerReferences": { ".": {}, 'k:{"uid":"0b6c"}': {} },
            },
            "f:ports": {},
          },
          TIME,
        ),
      ],
    },
    ports: [{ name: "http", port: 8080, protocol: "TCP" }],
    endpoints: Array.from({ length: endpoints }, (_, e) => {
      const n = firstAddress + e;
      const zone = ZONES[n % ZONES.length] as string;
      return {
        addresses: [
          `10.${1 + Math.floor(n / 62_500)}.${Math.floor(n / 250) % 250}.${(n % 250) + 1}`,
        ],
        conditions: { ready: true, serving: true, terminating: false },
        hostname: `${service}-${e}`,
        nodeName: `ip-10-0-${n % 40}-${(n * 7) % 250}.eu-west-1.compute.internal`,
        zone,
        hints: { forZones: [{ name: zone }] },
        targetRef: {
          kind: "Pod",
          namespace,
          name: `${service}-7d9f8c6b5-${(n * 2654435761).toString(36).slice(-5)}`,
          uid: `5f1e${String(n).padStart(8, "0")}-aaaa-4bbb-8ccc-9ddd0eee1fff`,
        },
      };
    }),
  };
}
