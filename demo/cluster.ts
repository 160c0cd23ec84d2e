// The demo cluster of `npm start`: two published Services whose endpoints are loopback
// backends (127.0.0.2–127.0.0.5, port 9200), as Kubernetes objects for the API emulator.

export const DEMO_PORT = 9200;

export const BACKENDS = [
  { name: "web-1", host: "127.0.0.2" },
  { name: "web-2", host: "127.0.0.3" },
  { name: "web-3", host: "127.0.0.4" },
  { name: "web-canary", host: "127.0.0.5" },
  { name: "api", host: "127.0.0.6" },
];

export function service(name: string) {
  return {
    metadata: { name, namespace: "demo", annotations: { "switchyard.dev/publish": "true" } },
    spec: { ports: [{ name: "http", port: 80 }] },
  };
}

/** The slice of a Service with these endpoint addresses; `draining` ones are terminating. */
export function slice(service: string, ready: string[], draining: string[] = []) {
  return {
    metadata: {
      name: `${service}-abcde`,
      namespace: "demo",
      labels: { "kubernetes.io/service-name": service },
    },
    addressType: "IPv4",
    ports: [{ name: "http", port: DEMO_PORT }],
    endpoints: [
      ...ready.map((ip) => ({
        addresses: [ip],
        conditions: { ready: true, serving: true, terminating: false },
      })),
      ...draining.map((ip) => ({
        addresses: [ip],
        conditions: { ready: false, serving: true, terminating: true },
      })),
    ],
  };
}
