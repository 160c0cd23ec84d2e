import { once } from "node:events";
import { type AddressInfo, connect, createServer, type Server } from "node:net";
import { gunzipSync, gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serveSwitchyard } from "../../bench/bare-workerd.ts";

/**
 * What reaches the client on the wire when the worker returns a backend's response as it came:
 * the worker leaves some hop-by-hop headers to the runtime (forward.ts), so this is checked on
 * the bytes the runtime writes, not on a Response object. The worker runs in bare `workerd
 * serve` (the real app, KV from a text binding) behind a raw TCP client, with a backend that
 * writes its answers by hand.
 */

const GZIPPED = gzipSync("a body the backend compressed");

/** Raw HTTP/1.1 answers, by request path. */
const ANSWERS: Record<string, string> = {
  "/hop": [
    "HTTP/1.1 200 OK",
    "Content-Type: text/plain",
    "Connection: keep-alive, X-Private",
    "X-Private: secret",
    "Keep-Alive: timeout=5",
    "Proxy-Connection: keep-alive",
    "Proxy-Authenticate: Basic",
    "TE: trailers",
    "Trailer: X-Checksum",
    "Upgrade: h2c",
    "X-Kept: yes",
    "Transfer-Encoding: chunked",
    "",
    "5\r\nhello\r\n0\r\n\r\n",
  ].join("\r\n"),
  // A proxy's challenge, which a client reads on a 407 only: dropped there, passed elsewhere.
  "/challenge": [
    "HTTP/1.1 407 Proxy Authentication Required",
    "Connection: keep-alive",
    "Proxy-Authenticate: Basic",
    "Content-Length: 0",
    "",
    "",
  ].join("\r\n"),
  "/challenge-ok": [
    "HTTP/1.1 200 OK",
    "Connection: keep-alive",
    "Proxy-Authenticate: Basic",
    "Content-Length: 2",
    "",
    "ok",
  ].join("\r\n"),
  "/proxy-connection": [
    "HTTP/1.1 200 OK",
    "Proxy-Connection: keep-alive",
    "Content-Length: 2",
    "",
    "ok",
  ].join("\r\n"),
  // Under /timed, a rule with timeouts.backendRequest: a body that stops after its first bytes,
  // and one that comes whole.
  "/timed/stall": [
    "HTTP/1.1 200 OK",
    "Content-Type: text/plain",
    "Content-Length: 100000",
    "",
    "only the beginning",
  ].join("\r\n"),
  "/timed/whole": [
    "HTTP/1.1 200 OK",
    "Content-Type: text/plain",
    "Content-Length: 5",
    "",
    "whole",
  ].join("\r\n"),
  "/timed/gzip": `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: gzip\r\nContent-Length: ${GZIPPED.length}\r\n\r\n${GZIPPED.toString("latin1")}`,
  // Under /cut/ (and /timed/cut/), the backend resets the connection after these bytes.
  ...Object.fromEntries(
    Object.entries({
      "/cut/chunked": ["HTTP/1.1 200 OK", "Transfer-Encoding: chunked", "", "5\r\nhello\r\n"],
      "/cut/length": ["HTTP/1.1 200 OK", "Content-Length: 100", "", "hello"],
    }).flatMap(([path, lines]) => [path, `/timed${path}`].map((p) => [p, lines.join("\r\n")])),
  ),
  "/plain": [
    "HTTP/1.1 200 OK",
    "Content-Type: text/plain",
    "Connection: keep-alive",
    "Keep-Alive: timeout=5",
    "Content-Length: 5",
    "",
    "plain",
  ].join("\r\n"),
};

let backend: Server;
let worker: { port: number; stop(): Promise<void> } | undefined;
let port: number;

/** One request on a fresh connection; the raw bytes of the answer: status, head and body. */
async function raw(path: string): Promise<{ status: number; head: string[]; body: string }> {
  const socket = connect(port, "127.0.0.1");
  socket.write(`GET ${path} HTTP/1.1\r\nHost: wire.test\r\nConnection: close\r\n\r\n`);
  let text = "";
  socket.setEncoding("latin1");
  socket.on("data", (chunk: string) => {
    text += chunk;
  });
  // Ended by the worker, or reset: either way the answer is all there will be.
  socket.on("error", () => {});
  await once(socket, "close");
  const split = text.indexOf("\r\n\r\n");
  return {
    status: Number(text.slice(9, 12)),
    head: text.slice(0, split).split("\r\n").slice(1),
    body: text.slice(split + 4),
  };
}

/** A chunked body's data. */
function unchunk(body: string): string {
  let out = "";
  let rest = body;
  for (;;) {
    const line = rest.indexOf("\r\n");
    const size = Number.parseInt(rest.slice(0, line), 16);
    if (!size) return out;
    out += rest.slice(line + 2, line + 2 + size);
    rest = rest.slice(line + 2 + size + 2);
  }
}

const names = (head: string[]) =>
  head.map((line) => line.slice(0, line.indexOf(":")).toLowerCase());

beforeAll(async () => {
  backend = createServer((socket) => {
    let pending = "";
    socket.on("data", (chunk) => {
      pending += chunk.toString("latin1");
      for (let end = pending.indexOf("\r\n\r\n"); end !== -1; end = pending.indexOf("\r\n\r\n")) {
        const path = pending.slice(0, end).split(" ")[1] ?? "/";
        pending = pending.slice(end + 4);
        socket.write(ANSWERS[path] ?? (ANSWERS["/plain"] as string), "latin1");
        if (path.includes("/cut/")) setTimeout(() => socket.resetAndDestroy(), 50);
      }
    });
  }).listen(0, "127.0.0.1");
  await once(backend, "listening");
  const origin = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
  const routes = {
    version: 1,
    routes: [
      {
        name: "wire",
        hostnames: ["wire.test"],
        rules: [
          // Requests under /x answer 503 (a pool without endpoints): the path normalization test.
          {
            matches: [{ path: { type: "PathPrefix", value: "/x" } }],
            backendRefs: [{ pool: "none" }],
          },
          {
            matches: [{ path: { type: "PathPrefix", value: "/timed" } }],
            timeouts: { backendRequest: "500ms" },
            backendRefs: [{ pool: "p" }],
          },
          { backendRefs: [{ pool: "p" }] },
        ],
      },
    ],
    pools: { p: { endpoints: [{ url: origin }] }, none: { endpoints: [] } },
  };
  worker = await serveSwitchyard("wire", routes);
  port = worker.port;
}, 60_000);

afterAll(async () => {
  await worker?.stop();
  backend?.close();
});

describe("a backend's response on the wire", () => {
  it("loses every hop-by-hop header and the ones Connection names; the rest and the body stay", async () => {
    const { head, body } = await raw("/hop");
    const sent = names(head);
    for (const name of [
      "x-private",
      "keep-alive",
      "proxy-connection",
      "proxy-authenticate",
      "te",
      "trailer",
      "upgrade",
    ])
      expect(sent, name).not.toContain(name);
    expect(head).toContain("X-Kept: yes");
    // The runtime frames the body itself: chunked, with the backend's one chunk inside.
    expect(body).toContain("hello");
  });

  it("drops Proxy-Authenticate from a 407, and passes it on any other status, where no client reads it", async () => {
    const challenge = await raw("/challenge");
    expect(challenge.status).toBe(407);
    expect(names(challenge.head)).not.toContain("proxy-authenticate");
    const ok = await raw("/challenge-ok");
    expect(ok.status).toBe(200);
    expect(ok.head).toContain("Proxy-Authenticate: Basic");
  });

  it("drops Proxy-Connection when nothing else on the response must change", async () => {
    const { status, head, body } = await raw("/proxy-connection");
    expect(status).toBe(200);
    expect(names(head)).not.toContain("proxy-connection");
    expect(body).toBe("ok");
  });

  it("routes and forwards the path normalized, as URL reads it, not as the request line had it", async () => {
    // The runtime's request.url keeps `/x/%2e%2e/../hop` as sent. Read as sent, it would match
    // the /x rule (503); normalized, it is /hop, for the catch-all and the backend.
    const { status, head, body } = await raw("/x/%2e%2e/../hop");
    expect(status).toBe(200);
    expect(head).toContain("X-Kept: yes"); // the answer the backend gives for /hop
    expect(body).toContain("hello");
  });

  it("ends a body that stops coming when the rule's timeout expires, and keeps a whole one as it is", async () => {
    const started = Date.now();
    const stalled = await raw("/timed/stall");
    // The headers and the first bytes went out; the rest never came, and the client is not
    // left waiting for it past the 500 ms of backendRequest.
    expect(stalled.status).toBe(200);
    expect(stalled.body).toContain("only the beginning");
    expect(stalled.body.length).toBeLessThan(100_000);
    expect(Date.now() - started).toBeLessThan(5_000);
    const whole = await raw("/timed/whole");
    expect(whole.head).toContain("Content-Length: 5");
    expect(whole.body).toBe("whole");
  });

  it("passes a compressed body through a rule with timeouts as the backend encoded it", async () => {
    const { head, body } = await raw("/timed/gzip");
    expect(head).toContain("Content-Encoding: gzip");
    const bytes = Buffer.from(
      head.includes("Transfer-Encoding: chunked") ? unchunk(body) : body,
      "latin1",
    );
    expect(gunzipSync(bytes).toString()).toBe("a body the backend compressed");
  });

  it.each(["", "/timed"])(
    "passes a reset in the middle of a body on as an unfinished body, never as a short whole one (%s)",
    async (prefix) => {
      // Chunked: the bytes that came, and no last chunk. With a length: fewer bytes than it says.
      const chunked = await raw(`${prefix}/cut/chunked`);
      expect(chunked.head).toContain("Transfer-Encoding: chunked");
      expect(chunked.body).toBe("5\r\nhello\r\n");
      const length = await raw(`${prefix}/cut/length`);
      expect(length.head).toContain("Content-Length: 100");
      expect(length.body).toBe("hello");
    },
  );

  it("drops the backend's Keep-Alive from a response passed through without a copy", async () => {
    const { head, body } = await raw("/plain");
    expect(names(head)).not.toContain("keep-alive");
    expect(head).toContain("Content-Length: 5");
    expect(body).toBe("plain");
  });
});
