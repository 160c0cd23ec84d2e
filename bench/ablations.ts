import type { SourceEdit } from "./bare-workerd.ts";

/**
 * What the header checks a proxy must make cost Switchyard: the one-route worker counted again
 * with each group of checks taken out of the bundle, cumulatively (`BENCH_ABLATE=true npm run
 * bench:instructions`). Never a build anyone runs: each variant forwards what a proxy must not
 * (hop-by-hop headers, a backend's own address, a forged client id). The edits name the code
 * they replace, and bundling fails when that code is no longer there.
 */
export interface Ablation {
  key: string;
  label: string;
  /** This step's edits; a variant has its own and every earlier step's. */
  edits: SourceEdit[];
}

export const ABLATIONS: readonly Ablation[] = [
  {
    key: "noResponseChecks",
    label: "Switchyard, 1 route, without looking at the response's headers",
    edits: [
      {
        // The response goes out as it came unless the worker adds something of its own: no look
        // at Connection, Proxy-Connection, Location or Content-Location (5 calls).
        file: "worker/proxy/forward.ts",
        from: "  const headers = response.headers;\n",
        to: "  if (!edits.requestId && !edits.setCookie && !edits.set && !edits.filters) return response;\n  const headers = response.headers;\n",
      },
    ],
  },
  {
    key: "noHopByHop",
    label: "… nor at the request's Connection, Proxy-Connection, Proxy-Authorization",
    edits: [
      {
        file: "worker/core/forward-headers.ts",
        from: '  const connection = incoming.get("connection");\n',
        to: "  const connection = null as string | null;\n",
      },
      {
        file: "worker/core/forward-headers.ts",
        from: "  for (const name of NOT_FORWARDED) if (incoming.has(name)) headers.delete(name);\n",
        to: "",
      },
    ],
  },
  {
    key: "noRequestReads",
    label: "… nor reading X-Request-Id, CF-Connecting-IP and Upgrade",
    edits: [
      {
        file: "worker/app.ts",
        from: 'requestIdOf(headers.get("x-request-id"), mintRequestId)',
        to: "mintRequestId()",
      },
      {
        file: "worker/proxy/forward.ts",
        from: 'clientIp: request.headers.get("cf-connecting-ip"),',
        to: "clientIp: null,",
      },
      {
        file: "worker/proxy/exchange.ts",
        from: 'const websocket = headers.get("upgrade")?.toLowerCase() === "websocket";',
        to: "const websocket = false;",
      },
    ],
  },
];

/** The edits of `ABLATIONS[index]`: its own and every earlier step's. */
export function ablationEdits(index: number): SourceEdit[] {
  return ABLATIONS.slice(0, index + 1).flatMap((a) => a.edits);
}
