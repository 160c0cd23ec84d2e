import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Metrics } from "./metrics.ts";

/** /healthz (the process answers), /readyz (informers synced and healthy), /metrics. */
export async function startHttp(
  port: number,
  metrics: Metrics,
  ready: () => { ok: boolean; detail: unknown },
): Promise<{ server: Server; port: number }> {
  const server = createServer(async (request, response) => {
    const path = (request.url ?? "/").split("?")[0];
    if (path === "/healthz") {
      response.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
    } else if (path === "/readyz") {
      const { ok, detail } = ready();
      response
        .writeHead(ok ? 200 : 503, { "content-type": "application/json" })
        .end(`${JSON.stringify(detail)}\n`);
    } else if (path === "/metrics") {
      response
        .writeHead(200, { "content-type": metrics.registry.contentType })
        .end(await metrics.registry.metrics());
    } else {
      response.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
    }
  });
  server.listen(port, "0.0.0.0");
  await once(server, "listening");
  return { server, port: (server.address() as AddressInfo).port };
}
