import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { serveSwitchyard } from "../../bench/bare-workerd.ts";
import { type Backend, startBackend } from "../../local/backends.ts";

/**
 * A WebSocket through the worker as a client meets it: a real client over a socket, the real app
 * in bare `workerd serve`, a loopback backend that echoes. The workerd suite checks the upgrade
 * on the Response object inside the isolate; this checks what the runtime carries, on a rule
 * with timeouts too: an open socket outlives them.
 */

let backend: Backend;
let worker: { port: number; stop(): Promise<void> } | undefined;
let port: number;

beforeAll(async () => {
  backend = await startBackend("ws-echo");
  const routes = {
    version: 1,
    routes: [
      {
        name: "ws",
        hostnames: ["ws.test"],
        rules: [
          {
            matches: [{ path: { type: "PathPrefix", value: "/timed" } }],
            filters: [
              {
                type: "URLRewrite",
                urlRewrite: { path: { type: "ReplacePrefixMatch", replacePrefixMatch: "/" } },
              },
            ],
            timeouts: { backendRequest: "300ms" },
            backendRefs: [{ pool: "p" }],
          },
          { backendRefs: [{ pool: "p" }] },
        ],
      },
    ],
    pools: { p: { endpoints: [{ url: backend.url }] } },
  };
  worker = await serveSwitchyard("websocket", routes);
  port = worker.port;
}, 60_000);

afterAll(async () => {
  await worker?.stop();
  await backend?.close();
});

/** Opens a WebSocket through the worker and sends `hello`, after `waitFirst` ms; the echo. */
async function echoThrough(path: string, waitFirst = 0): Promise<string> {
  const socket = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers: { host: "ws.test" } });
  try {
    await once(socket, "open");
    if (waitFirst > 0) await new Promise((resolve) => setTimeout(resolve, waitFirst));
    const reply = once(socket, "message");
    socket.send("hello");
    const [data] = await reply;
    return String(data);
  } finally {
    socket.close();
  }
}

describe("a WebSocket through the worker, on the wire", () => {
  it("is upgraded and carries messages both ways", async () => {
    expect(await echoThrough("/ws")).toBe("ws-echo: hello");
  });

  it("stays open past the rule's timeouts", async () => {
    // backendRequest is 300 ms: the socket is older than that when the message goes.
    expect(await echoThrough("/timed/ws", 600)).toBe("ws-echo: hello");
  });
});
