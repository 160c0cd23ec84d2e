/**
 * Every answer the worker makes itself, as a tagged union, and the one place that turns them
 * into responses: short JSON naming the route and a reason, never a backend address.
 */
export type Failure =
  | { kind: "settings"; message: string }
  | { kind: "no-config"; message: string }
  | { kind: "no-route"; host: string; path: string }
  | { kind: "missing-pool"; route: string; pool: string }
  | { kind: "unavailable"; route: string; message: string }
  | { kind: "bad-gateway"; route: string; message: string }
  | { kind: "timeout"; route: string; message: string };

const STATUS: Record<Failure["kind"], number> = {
  settings: 500,
  "no-config": 503,
  "no-route": 404,
  "missing-pool": 500,
  unavailable: 503,
  "bad-gateway": 502,
  timeout: 504,
};

function body(failure: Failure): Record<string, string> {
  switch (failure.kind) {
    case "settings":
      return { error: "bad_settings", message: failure.message };
    case "no-config":
      return { error: "no_config", message: failure.message };
    case "no-route":
      return {
        error: "no_route",
        message: `no route matches host ${failure.host} and path ${failure.path}`,
      };
    case "missing-pool":
      return {
        error: "missing_pool",
        route: failure.route,
        message: `backendRef names pool "${failure.pool}", which does not exist or is invalid`,
      };
    case "unavailable":
      return { error: "no_backend", route: failure.route, message: failure.message };
    case "bad-gateway":
      return { error: "bad_gateway", route: failure.route, message: failure.message };
    case "timeout":
      return { error: "timeout", route: failure.route, message: failure.message };
  }
}

export function failureResponse(failure: Failure, requestId?: string): Response {
  const headers: Record<string, string> = {
    "content-type": "application/json; charset=utf-8",
    "cache-control": "no-store",
  };
  if (requestId) headers["x-request-id"] = requestId;
  return new Response(`${JSON.stringify(body(failure))}\n`, {
    status: STATUS[failure.kind],
    headers,
  });
}
