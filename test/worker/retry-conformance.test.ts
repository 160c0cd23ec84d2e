import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { backends, harness, pool, putRoutes } from "./harness.ts";

/**
 * Gateway API's retry conformance tests (HTTPRouteRetry, HTTPRouteRetryConnectionError,
 * HTTPRouteRetryWithTimeouts): their HTTPRoutes as the suite's manifests have them, a
 * backendRef read as the pool of its name, and every request the suite sends with the status
 * it expects. `infra-backend-v3` is the suite's echo backend with its retry simulation (a
 * request id fails `succeedAfter` times with `responseCode`, each after `delayRetry`), here the
 * `flaky` backend; `infra-backend-connection-error` is one pod that refuses connections and one
 * healthy pod.
 */

const b = backends();

const RETRY = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: retries }
spec:
  rules:
    - matches: [{ path: { type: PathPrefix, value: /retry/code-500-attempts-3 } }]
      retry: { codes: [500], attempts: 3 }
      backendRefs: [{ name: infra-backend-v3, port: 8080 }]
    - matches: [{ path: { type: PathPrefix, value: /retry/code-all-attempts-2 } }]
      retry: { codes: [500, 502, 503, 504], attempts: 2 }
      backendRefs: [{ name: infra-backend-v3, port: 8080 }]
    - matches: [{ path: { type: PathPrefix, value: /retry/code-all-attempts-0 } }]
      retry: { codes: [500, 502, 503, 504], attempts: 0 }
      backendRefs: [{ name: infra-backend-v3, port: 8080 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: retries-connection-error }
spec:
  rules:
    - matches: [{ path: { type: PathPrefix, value: /retry-on-connection-errors } }]
      retry: { attempts: 100 }
      backendRefs: [{ name: infra-backend-connection-error, port: 8080 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: retries-with-timeouts }
spec:
  rules:
    - matches: [{ path: { type: PathPrefix, value: /retry/backend-request-timeout-200ms } }]
      retry: { attempts: 2 }
      timeouts: { backendRequest: 200ms }
      backendRefs: [{ name: infra-backend-v3, port: 8080 }]
    - matches: [{ path: { type: PathPrefix, value: /retry/request-timeout-200ms } }]
      retry: { codes: [500], attempts: 5 }
      timeouts: { backendRequest: 200ms, request: 400ms }
      backendRefs: [{ name: infra-backend-v3, port: 8080 }]
`;

function routesDocument() {
  const routes = parseAllDocuments(RETRY).map((document) => {
    const { metadata, spec } = document.toJS() as {
      metadata: { name: string };
      spec: { rules: { backendRefs: { name: string }[] }[] };
    };
    return {
      name: metadata.name,
      rules: spec.rules.map((rule) => ({
        ...rule,
        backendRefs: rule.backendRefs.map((ref) => ({ pool: ref.name })),
      })),
    };
  });
  return {
    version: 1,
    routes,
    pools: {
      "infra-backend-v3": pool(b.flaky),
      "infra-backend-connection-error": pool(b.closed, b.a),
    },
  };
}

/** [path, responseCode, succeedAfter, delayRetry, expected status], as the suites send them. */
const CASES: [string, number, number, string | undefined, number][] = [
  // HTTPRouteRetry
  ["/retry/code-500-attempts-3", 500, 2, undefined, 200],
  ["/retry/code-500-attempts-3", 500, 4, undefined, 500],
  ["/retry/code-500-attempts-3", 503, 2, undefined, 503],
  ["/retry/code-all-attempts-2", 500, 1, undefined, 200],
  ["/retry/code-all-attempts-2", 500, 3, undefined, 500],
  ["/retry/code-all-attempts-2", 502, 1, undefined, 200],
  ["/retry/code-all-attempts-2", 502, 3, undefined, 502],
  ["/retry/code-all-attempts-2", 503, 1, undefined, 200],
  ["/retry/code-all-attempts-2", 503, 3, undefined, 503],
  ["/retry/code-all-attempts-2", 504, 1, undefined, 200],
  ["/retry/code-all-attempts-2", 504, 3, undefined, 504],
  // HTTPRouteRetryWithTimeouts
  ["/retry/backend-request-timeout-200ms", 500, 2, "1s", 200],
  ["/retry/backend-request-timeout-200ms", 500, 3, "1s", 504],
  ["/retry/request-timeout-200ms", 500, 4, undefined, 200],
  ["/retry/request-timeout-200ms", 500, 4, "100ms", 504],
];

describe("Gateway API's retry conformance", () => {
  it.each(CASES)(
    "%s answering %i for %i tries (delay %s) gives %i",
    async (path, code, succeedAfter, delayRetry, expected) => {
      await putRoutes(routesDocument());
      const h = harness();
      // The suite sends each case until it passes several times in a row, each with a new id.
      for (let run = 0; run < 3; run++) {
        const query = new URLSearchParams({
          responseCode: String(code),
          succeedAfter: String(succeedAfter),
          uuid: crypto.randomUUID(),
          ...(delayRetry ? { delayRetry } : {}),
        });
        const response = await h.fetch(`http://gateway.test${path}?${query}`);
        await response.body?.cancel();
        expect(response.status).toBe(expected);
      }
    },
  );

  it("HTTPRouteRetryConnectionError: 10 requests in a row reach the healthy pod", async () => {
    await putRoutes(routesDocument());
    const h = harness();
    for (let i = 0; i < 10; i++)
      expect(await h.backendOf("http://gateway.test/retry-on-connection-errors")).toBe("a");
  });

  it("answers 503 once every try failed at the connection, as the suite accepts (500 or 503)", async () => {
    await putRoutes({
      ...routesDocument(),
      pools: { ...routesDocument().pools, "infra-backend-connection-error": pool(b.closed) },
    });
    const response = await harness().fetch("http://gateway.test/retry-on-connection-errors");
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({ error: "unreachable" });
  });
});
