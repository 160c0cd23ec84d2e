/**
 * Every answer the worker makes itself, as a tagged union, and the one place that turns them
 * into responses: JSON with a reason code, the route name and the request id, nothing more. A
 * client learns no pool (a Kubernetes namespace and Service), binding, address or load error;
 * the details go to the log, under the same request id.
 */
export type Failure =
  | { kind: "settings"; message: string }
  /** The path is refused before any rule is matched (an escaped slash, by PATH_ESCAPED_SLASHES). */
  | { kind: "bad-path"; message: string }
  | { kind: "no-config"; message: string }
  | { kind: "no-route"; host: string; path: string }
  | { kind: "missing-pool"; route: string; pool: string }
  /**
   * A rule with no backendRefs and no filter that answers, or whose backendRefs all have weight 0
   * (`weightZero`): Gateway API answers both with 500.
   */
  | { kind: "no-backends"; route: string; rule: string; weightZero?: boolean }
  | { kind: "unavailable"; route: string; message: string }
  /** The endpoint's transport binding is not bound or not allowed: a configuration error. */
  | { kind: "bad-gateway"; route: string; message: string }
  /** Every try failed to connect, or reset before its headers (decision 0006: 503, as Envoy). */
  | { kind: "unreachable"; route: string; message: string }
  | { kind: "timeout"; route: string; message: string }
  /** The client's body was still coming when a timeout expired: the client's delay. */
  | { kind: "client-timeout"; route: string; message: string }
  /** The client went away, or its body failed, while it was being read: nobody to answer. */
  | { kind: "client-closed"; route: string; message: string };

const STATUS: Record<Failure["kind"], number> = {
  settings: 500,
  "bad-path": 400,
  "no-config": 503,
  "no-route": 404,
  "missing-pool": 500,
  "no-backends": 500,
  unavailable: 503,
  "bad-gateway": 502,
  unreachable: 503,
  timeout: 504,
  "client-timeout": 408,
  // nginx's status for a client that closed its request: it is never seen, but it is logged.
  "client-closed": 499,
};

/** What a client is told: a reason code, the route, a fixed sentence. Never a pool, binding,
 * address or load error: those are in `detail` for the log and the admin API. */
const SAY: Record<Failure["kind"], { error: string; message: string }> = {
  settings: { error: "bad_settings", message: "the load balancer is misconfigured" },
  "bad-path": { error: "bad_path", message: "the request path is not accepted" },
  "no-config": { error: "no_config", message: "no routing configuration is loaded yet" },
  "no-route": { error: "no_route", message: "no route matches this request" },
  "missing-pool": { error: "missing_pool", message: "a backend of this route is not configured" },
  "no-backends": { error: "no_backends", message: "this route has no backends" },
  unavailable: { error: "no_backend", message: "no backend can take this request now" },
  "bad-gateway": { error: "bad_gateway", message: "the backend could not be reached" },
  unreachable: { error: "unreachable", message: "the backend could not be reached" },
  timeout: { error: "timeout", message: "the backend did not answer in time" },
  "client-timeout": {
    error: "request_timeout",
    message: "the request body did not arrive in time",
  },
  "client-closed": { error: "client_closed", message: "the request was closed by the client" },
};

/** The operator's account of a failure: what the log and the admin API say. */
export function detail(failure: Failure): string {
  switch (failure.kind) {
    case "settings":
    case "bad-path":
    case "no-config":
    case "unavailable":
    case "bad-gateway":
    case "unreachable":
    case "timeout":
    case "client-timeout":
    case "client-closed":
      return failure.message;
    case "no-route":
      return `no route matches host ${failure.host} and path ${failure.path}`;
    case "no-backends":
      return failure.weightZero
        ? `every backendRef of rule ${failure.rule} has weight 0`
        : `rule ${failure.rule} has no backendRefs, no RequestRedirect and no DirectResponse`;
    case "missing-pool":
      return `backendRef names pool "${failure.pool}", which does not exist or is invalid`;
  }
}

export function failureResponse(failure: Failure, requestId?: string): Response {
  const headers: Record<string, string> = {
    "content-type": "application/json; charset=utf-8",
    "cache-control": "no-store",
  };
  if (requestId) headers["x-request-id"] = requestId;
  const body = {
    ...SAY[failure.kind],
    ...("route" in failure ? { route: failure.route } : {}),
    ...(requestId ? { requestId } : {}),
  };
  return new Response(`${JSON.stringify(body)}\n`, { status: STATUS[failure.kind], headers });
}
