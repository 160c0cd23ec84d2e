import { execFileSync } from "node:child_process";
import { once } from "node:events";
import { readFileSync, writeFileSync } from "node:fs";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { kubeClient } from "./kube-client.ts";
import { connectionFromFiles, KubeconfigError, loadKubeConnection } from "./kubeconfig.ts";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "switchyard-kubeconfig-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** A kubeconfig with one context `c` over cluster `k` and user `u`. */
async function kubeconfig(
  name: string,
  cluster: Record<string, unknown>,
  user: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): Promise<string> {
  const file = join(dir, name);
  await writeFile(
    file,
    stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "k", cluster }],
      users: [{ name: "u", user }],
      contexts: [{ name: "c", context: { cluster: "k", user: "u" } }],
      "current-context": "c",
      ...extra,
    }),
  );
  return file;
}

describe("the kubeconfig", () => {
  it("takes the current context's server and token", async () => {
    const file = await kubeconfig("token", { server: "http://127.0.0.1:1" }, { token: "t0k" });
    const connection = connectionFromFiles([file]);
    expect(connection.server).toBe("http://127.0.0.1:1");
    expect(await connection.authorization()).toBe("Bearer t0k");
    expect(connection.dispatcher).toBeUndefined();
  });

  it("reads a token file again when it changes, relative to the kubeconfig", async () => {
    await writeFile(join(dir, "token.txt"), "first\n");
    const file = await kubeconfig(
      "token-file",
      { server: "https://k.example:6443", "insecure-skip-tls-verify": true },
      { tokenFile: "token.txt" },
    );
    const connection = connectionFromFiles([file]);
    expect(await connection.authorization()).toBe("Bearer first");
    await new Promise((r) => setTimeout(r, 20));
    await writeFile(join(dir, "token.txt"), "second\n");
    expect(await connection.authorization()).toBe("Bearer second");
    expect(connection.dispatcher).toBeDefined();
  });

  it("runs an exec credential plugin and keeps its token until it expires", async () => {
    const plugin = join(dir, "plugin.sh");
    const count = join(dir, "runs");
    await writeFile(
      plugin,
      `#!/bin/sh\necho run >> ${count}\necho '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"from-'"$GREETING"'","expirationTimestamp":"2999-01-01T00:00:00Z"}}'\n`,
    );
    await chmod(plugin, 0o755);
    const file = await kubeconfig(
      "exec",
      { server: "http://127.0.0.1:1" },
      {
        exec: {
          apiVersion: "client.authentication.k8s.io/v1",
          command: plugin,
          env: [{ name: "GREETING", value: "plugin" }],
        },
      },
    );
    const connection = connectionFromFiles([file]);
    expect(await Promise.all([connection.authorization(), connection.authorization()])).toEqual([
      "Bearer from-plugin",
      "Bearer from-plugin",
    ]);
    expect(await connection.authorization()).toBe("Bearer from-plugin");
    const { readFile } = await import("node:fs/promises");
    expect((await readFile(count, "utf8")).trim().split("\n")).toHaveLength(1);
  });

  it("merges files as kubectl does: the first to name an entry or the current context wins", async () => {
    const first = await kubeconfig("first", { server: "http://first:1" }, { token: "a" });
    const second = join(dir, "second");
    await writeFile(
      second,
      stringify({
        clusters: [
          { name: "k", cluster: { server: "http://second:1" } },
          { name: "other", cluster: { server: "http://other:1" } },
        ],
        "current-context": "elsewhere",
      }),
    );
    expect(connectionFromFiles([first, second]).server).toBe("http://first:1");
  });

  it.each([
    [
      { server: "http://k:1" },
      { "auth-provider": { name: "oidc" } },
      "use an exec credential plugin",
    ],
    [{}, { token: "t" }, "names cluster k, which has no server"],
  ])("says what is wrong: %j %j", async (cluster, user, message) => {
    const file = await kubeconfig("bad", cluster, user);
    expect(() => connectionFromFiles([file])).toThrow(message);
  });

  it("says where it looked when there is no kubeconfig", () => {
    expect(() => loadKubeConnection({ KUBECONFIG: join(dir, "missing") })).toThrow(KubeconfigError);
    expect(() => loadKubeConnection({ KUBECONFIG: join(dir, "missing") })).toThrow(
      /not in a pod, and .*missing does not exist/,
    );
  });
});

describe("TLS to the API server", () => {
  /** A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl. */
  function certificates() {
    const sh = (args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
    sh([
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      "ca.key",
      "-out",
      "ca.crt",
      "-days",
      "1",
      "-subj",
      "/CN=test-ca",
    ]);
    for (const [name, subject, ext] of [
      ["server", "/CN=kube-apiserver", "subjectAltName=IP:127.0.0.1"],
      ["client", "/CN=switchyard-sync", "extendedKeyUsage=clientAuth"],
    ] as const) {
      sh([
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        `${name}.key`,
        "-out",
        `${name}.csr`,
        "-subj",
        subject,
      ]);
      writeFileSync(join(dir, `${name}.ext`), `${ext}\n`);
      sh([
        "x509",
        "-req",
        "-in",
        `${name}.csr`,
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        `${name}.crt`,
        "-days",
        "1",
        "-extfile",
        `${name}.ext`,
      ]);
    }
    const read = (file: string) => readFileSync(join(dir, file));
    return {
      ca: read("ca.crt"),
      server: { key: read("server.key"), cert: read("server.crt") },
      client: { key: read("client.key"), cert: read("client.crt") },
    };
  }

  it("trusts the kubeconfig's CA and presents its client certificate; refuses a server it cannot verify", async () => {
    const { ca, server, client } = certificates();
    const https = createServer(
      { ...server, ca, requestCert: true, rejectUnauthorized: true },
      (request, response) => {
        const peer = (request.socket as import("node:tls").TLSSocket).getPeerCertificate();
        response.writeHead(200, { "content-type": "application/json" });
        response.end(JSON.stringify({ user: peer.subject?.CN }));
      },
    );
    https.listen(0, "127.0.0.1");
    await once(https, "listening");
    const port = (https.address() as AddressInfo).port;
    try {
      const b64 = (bytes: Buffer) => bytes.toString("base64");
      const file = await kubeconfig(
        "tls",
        { server: `https://127.0.0.1:${port}`, "certificate-authority-data": b64(ca) },
        { "client-certificate-data": b64(client.cert), "client-key-data": b64(client.key) },
      );
      const kube = kubeClient(connectionFromFiles([file]));
      expect(await kube.request("GET", "/api")).toEqual({ user: "switchyard-sync" });
      // Without the CA, the server's certificate is not trusted.
      const untrusting = await kubeconfig(
        "tls-no-ca",
        { server: `https://127.0.0.1:${port}` },
        { "client-certificate-data": b64(client.cert), "client-key-data": b64(client.key) },
      );
      await expect(
        kubeClient(connectionFromFiles([untrusting])).request("GET", "/api"),
      ).rejects.toThrow();
    } finally {
      https.close();
    }
  });
});
