// `npm run chaos`: sustained load through the worker in workerd (wrangler dev, local) while its
// backends and discovery-sync fail in real ways, on loopback only, bounded to five minutes.
// Backends: one is killed and restarted, one hangs, one resets in the middle of its body, one
// answers 503. discovery-sync (two replicas against the Kubernetes and KV REST emulators): its
// watches are cut, a relist after 410 Gone, a burst of 429s from the KV API, and its leader is
// killed while a write is in flight. It reports client errors, requests sent to an endpoint after
// its removal was published and picked up, retries per request, the time KV took to converge after
// each fault and lost endpoint updates, writes bench-results/chaos.json, and exits 1 when a target
// is missed. docs/reliability.md explains the figures.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { Agent, request } from "undici";
import { kvNamespaceId, OFFLINE_ENV, ROOT, spawnWranglerDev } from "../cli/wrangler.ts";
import { SwitchableBackend, type SwitchableMode } from "../local/backends.ts";
import { startKubeApi, writeKubeconfig } from "../local/emulators/kube-api.ts";
import { clientEnv, startKvRest } from "../local/emulators/kv-rest.ts";
import { miniflareKv } from "../local/emulators/miniflare-kv.ts";

const PORT = Number(process.env.CHAOS_PORT ?? 8797);
const BACKEND_PORT = 9300;
const HOST = "chaos.localhost";
const POOL = "chaos/web:http";
const CONCURRENCY = 8;
const DEADLINE_MS = 5 * 60_000;
const ADMIN_TOKEN = "chaos-admin-token-local-only-0123456789";
/** How long KV may take to show a change before the update counts as lost. */
const CONVERGE_LIMIT_MS = 45_000;

const ADDRESSES = ["127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14", "127.0.0.15"];
const urlOf = (ip: string) => `http://${ip}:${BACKEND_PORT}`;

const routes = {
  version: 1,
  routes: [
    {
      name: "chaos",
      hostnames: [HOST],
      rules: [
        {
          // The path tricks' target: a backend must never see /admin.
          name: "blocked",
          matches: [{ path: { type: "PathPrefix", value: "/admin" } }],
          filters: [
            { type: "DirectResponse", directResponse: { statusCode: 403, body: { string: "no" } } },
          ],
        },
        {
          name: "web",
          backendRefs: [{ pool: POOL }],
          retry: { attempts: 2, codes: [503] },
          passiveHealth: { failureCodes: [503] },
          timeouts: { request: "5s", backendRequest: "300ms" },
        },
      ],
    },
  ],
  pools: {},
};

interface Sample {
  at: number;
  status?: number;
  /** "connect": no answer; "truncated": the body broke off after the headers came. */
  error?: "connect" | "truncated";
}

interface PhaseResult {
  phase: string;
  requests: number;
  clientErrors: number;
  truncated: number;
  retriesPerRequest: number;
  convergeMs?: number;
  lostUpdates?: number;
  sentAfterRemoval?: number;
  /** Endpoints passive health took down in the phase, though none misbehaved. */
  ejections?: number;
  /** Bytes of buffered bodies the worker still held after the phase. */
  bufferedBytes?: number;
  /** Path tricks answered by a backend instead of the guarding rule. */
  blockedReached?: number;
  /** Slow uploads the worker answered 408 (its own timeout, not the endpoint's). */
  answered408?: number;
}

function slice(ready: string[]) {
  return {
    metadata: {
      name: "web-1",
      namespace: "chaos",
      labels: { "kubernetes.io/service-name": "web" },
    },
    addressType: "IPv4",
    ports: [{ name: "http", port: BACKEND_PORT }],
    endpoints: ready.map((ip) => ({
      addresses: [ip],
      conditions: { ready: true, serving: true, terminating: false },
    })),
  };
}

const say = (line = "") => process.stdout.write(`${line}\n`);
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function main(): Promise<number> {
  const started = Date.now();
  const cleanups: (() => unknown)[] = [];
  const children = new Set<ChildProcess>();
  let loading = false;
  const cleanup = async () => {
    loading = false;
    // SIGTERM first: wrangler stops its workerd only when it is let to.
    await Promise.all(
      [...children].map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = once(child, "exit");
        child.kill("SIGTERM");
        const force = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await exited;
        clearTimeout(force);
      }),
    );
    for (const fn of cleanups.reverse()) await Promise.resolve(fn()).catch(() => {});
  };
  const deadline = setTimeout(() => {
    say(`chaos: not finished within ${DEADLINE_MS / 60_000} minutes; stopping`);
    void cleanup().then(() => process.exit(1));
  }, DEADLINE_MS);
  deadline.unref();

  try {
    const backends = ADDRESSES.map((ip) => new SwitchableBackend(ip, BACKEND_PORT));
    await Promise.all(backends.map((b) => b.start()));
    cleanups.push(() => Promise.all(backends.map((b) => b.kill())));
    const [b11, b12, b13, b14, b15] = backends as [
      SwitchableBackend,
      SwitchableBackend,
      SwitchableBackend,
      SwitchableBackend,
      SwitchableBackend,
    ];

    const dir = await mkdtemp(join(tmpdir(), "switchyard-chaos-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const kube = await startKubeApi();
    cleanups.push(() => kube.close());
    kube.store.create("services", {
      metadata: {
        name: "web",
        namespace: "chaos",
        annotations: { "switchyard.dev/publish": "true" },
      },
      spec: { ports: [{ name: "http", port: 80 }] },
    } as never);
    let desired = [b11, b12, b13, b14].map((b) => b.ip);
    kube.store.create("endpointslices", slice(desired) as never);
    const kvBackend = await miniflareKv(dir, await kvNamespaceId());
    cleanups.push(() => kvBackend.dispose());
    await kvBackend.put("routes", { value: JSON.stringify(routes), metadata: null });
    const kv = await startKvRest({ backend: kvBackend });
    cleanups.push(() => kv.close());
    const kubeconfig = join(dir, "kubeconfig");
    await writeKubeconfig(kubeconfig, kube.url);

    const replica = (name: string) => {
      const child = spawn(
        process.execPath,
        [join(ROOT, "discovery-sync/main.ts"), "--http-port", "0"],
        {
          cwd: ROOT,
          env: {
            ...OFFLINE_ENV,
            KUBECONFIG: kubeconfig,
            ...clientEnv(kv),
            POD_NAME: name,
            LOG_LEVEL: "error",
          },
          stdio: ["ignore", "ignore", "inherit"],
        },
      );
      children.add(child);
      child.once("exit", () => children.delete(child));
      return child;
    };
    const replicas = new Map([
      ["replica-a", replica("replica-a")],
      ["replica-b", replica("replica-b")],
    ]);

    // KV converged: the pool document's endpoint URLs are exactly the desired ones.
    const poolKey = `pool:${POOL}`;
    const urlsIn = (value: string | undefined) =>
      value === undefined
        ? undefined
        : (JSON.parse(value) as { endpoints: { url: string }[] }).endpoints
            .map((e) => e.url)
            .sort()
            .join(" ");
    const wanted = () => desired.map(urlOf).sort().join(" ");
    const published = async (limitMs = CONVERGE_LIMIT_MS): Promise<number | undefined> => {
      const from = Date.now();
      const target = wanted();
      const write = kv.nextWrite((w) => w.key === poolKey && urlsIn(w.value) === target, limitMs);
      const now = await kvBackend.get(poolKey);
      if (urlsIn(now?.value) === target) return 0;
      return write.then(
        (w) => w.at - from,
        () => undefined,
      );
    };
    say("chaos: waiting for discovery-sync to publish chaos/web");
    if ((await published(30_000)) === undefined) throw new Error("the pool was never published");

    const worker = spawnWranglerDev({
      port: PORT,
      persistTo: dir,
      vars: {
        CONFIG_REFRESH_SECONDS: "1",
        STICKY_SECRET: "chaos-local-only",
        ADMIN_TOKEN,
        ACCESS_LOG_SAMPLE: "1",
      },
    });
    children.add(worker);
    /** tries of each request, by the time the worker logged it. */
    const tries: { at: number; tries: number }[] = [];
    let ready: () => void = () => {};
    const isReady = new Promise<void>((resolve, reject) => {
      ready = resolve;
      worker.once("exit", (code) =>
        reject(
          new Error(`wrangler dev exited (${code}) before it was ready; is port ${PORT} free?`),
        ),
      );
    });
    let pending = "";
    worker.stdout?.setEncoding("utf8");
    worker.stdout?.on("data", (chunk: string) => {
      if (chunk.includes("Ready on")) ready();
      pending += chunk;
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        const at = line.indexOf('{"level":"info","message":"access"');
        if (at < 0) continue;
        const entry = JSON.parse(line.slice(at)) as { at: string; tries: number };
        tries.push({ at: Date.parse(entry.at), tries: entry.tries });
      }
    });
    let stderr = "";
    worker.stderr?.setEncoding("utf8");
    worker.stderr?.on("data", (chunk: string) => {
      stderr = (stderr + chunk).slice(-4000);
    });
    worker.once("exit", () => {
      if (stderr) process.stderr.write(stderr);
    });
    await isReady;
    const workerUrl = `http://127.0.0.1:${PORT}`;
    const admin = async () => {
      const res = await fetch(`${workerUrl}/__switchyard/pools`, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      return (await res.json()) as { name: string; endpoints: { url: string }[] }[];
    };
    /** Resolves when the worker's snapshot holds exactly the desired endpoints (polled: another process). */
    const pickedUp = async () => {
      const target = wanted();
      for (;;) {
        const pool = (await admin()).find((p) => p.name === POOL);
        if (
          pool?.endpoints
            .map((e) => e.url)
            .sort()
            .join(" ") === target
        )
          return Date.now();
        await pause(50);
      }
    };

    // Load: CONCURRENCY clients sending GETs back to back until told to stop.
    const samples: Sample[] = [];
    const agent = new Agent({ connections: CONCURRENCY });
    cleanups.push(() => agent.close());
    loading = true;
    const client = async () => {
      while (loading) {
        const at = Date.now();
        let headers = false;
        try {
          const res = await request(`${workerUrl}/`, {
            headers: { host: HOST },
            dispatcher: agent,
            headersTimeout: 10_000,
            bodyTimeout: 10_000,
          });
          headers = true;
          await res.body.text();
          samples.push({ at, status: res.statusCode });
        } catch {
          samples.push({ at, error: headers ? "truncated" : "connect" });
          if (!headers) await pause(10); // a refused connection must not spin the loop
        }
      }
    };
    await pickedUp();
    const load = Promise.all(Array.from({ length: CONCURRENCY }, client));
    say(`chaos: load running (${CONCURRENCY} clients, GET ${HOST}/)`);

    /** A backend that behaves badly for `ms`, then echoes again for 2 s before the next phase. */
    const misbehave = async (backend: SwitchableBackend, behavior: SwitchableMode, ms: number) => {
      backend.set(behavior);
      await pause(ms);
      backend.set("echo");
      await pause(2_000);
      return {};
    };
    const results: PhaseResult[] = [];
    const phase = async (name: string, run: () => Promise<Partial<PhaseResult>>) => {
      const from = Date.now();
      const extra = await run();
      const to = Date.now();
      const inside = samples.filter((s) => s.at >= from && s.at < to);
      const logged = tries.filter((t) => t.at >= from && t.at < to);
      const result: PhaseResult = {
        phase: name,
        requests: inside.length,
        clientErrors: inside.filter(
          (s) => s.error === "connect" || (s.status !== undefined && s.status >= 500),
        ).length,
        truncated: inside.filter((s) => s.error === "truncated").length,
        retriesPerRequest:
          logged.length === 0
            ? 0
            : Math.round(
                (logged.reduce((n, t) => n + Math.max(0, t.tries - 1), 0) / logged.length) * 1000,
              ) / 1000,
        ...extra,
      };
      results.push(result);
      say(`  ${JSON.stringify(result)}`);
    };
    /** Changes the cluster's endpoints and measures publish time, pickup, and traffic to removed ones. */
    const change = async (next: SwitchableBackend[], before?: () => Promise<void>) => {
      const removed = backends.filter((b) => desired.includes(b.ip) && !next.includes(b));
      desired = next.map((b) => b.ip);
      const write = published();
      kube.store.apply("endpointslices", slice(desired) as never);
      await before?.();
      const convergeMs = await write;
      if (convergeMs === undefined) return { lostUpdates: 1 };
      await pickedUp();
      const hitsAtPickup = removed.map((b) => b.hits);
      await pause(2_000);
      const sentAfterRemoval = removed.reduce((n, b, i) => n + b.hits - (hitsAtPickup[i] ?? 0), 0);
      return { convergeMs, lostUpdates: 0, sentAfterRemoval };
    };
    const leader = () =>
      (
        kube.store.get("leases", "default", "switchyard-sync-default") as unknown as {
          spec: { holderIdentity: string };
        }
      ).spec.holderIdentity;

    await phase("steady", async () => {
      await pause(3_000);
      return {};
    });
    await phase("backend killed, restarted after 6 s", async () => {
      await b11.kill();
      await pause(6_000);
      await b11.start();
      await pause(2_000);
      return {};
    });
    await phase("backend hangs for 6 s", () => misbehave(b12, "hang", 6_000));
    await phase("backend answers 503 for 6 s", () => misbehave(b13, "unavailable", 6_000));
    await phase("backend resets mid-body for 3 s", () => misbehave(b14, "midbody", 3_000));
    await phase("endpoint removed", () => change([b11, b12, b13]));
    await phase("watches cut, endpoint added", () => {
      kube.dropWatches();
      return change([b11, b12, b13, b15]);
    });
    await phase("410 Gone, endpoint removed", () => {
      kube.store.compact();
      kube.dropWatches();
      return change([b11, b12, b13]);
    });
    await phase("burst of 429s from the KV API, endpoint added", () => {
      kv.rateLimit(5, 1);
      return change([b11, b12, b13, b14]);
    });
    await phase("leader killed mid-write, endpoint removed", () => {
      kv.stallWrites(true);
      return change([b11, b12, b14], async () => {
        await kv.writeHeld(15_000);
        const name = leader();
        const child = replicas.get(name);
        if (!child) throw new Error(`the Lease holder ${name} is not a replica this run started`);
        const abandoned = kv.abandonedWrites();
        child.kill("SIGKILL");
        await once(child, "exit");
        replicas.delete(name);
        // The emulator sees the dead client's connection close a moment after the exit.
        for (let i = 0; i < 100 && kv.abandonedWrites() === abandoned; i++) await pause(20);
        if (kv.abandonedWrites() === abandoned)
          throw new Error("the killed leader's held write was not abandoned");
        kv.stallWrites(false);
        replicas.set("replica-c", replica("replica-c"));
      });
    });
    /** Endpoints the worker has down now, and the bytes of bodies it holds (admin API). */
    const downEndpoints = async () =>
      (
        (await admin()).find((p) => p.name === POOL) as unknown as {
          endpoints: { health: string }[];
        }
      ).endpoints.filter((e) => e.health === "down").length;
    const bufferedBytes = async () =>
      (
        (await (
          await fetch(`${workerUrl}/__switchyard/status`, {
            headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
          })
        ).json()) as { bufferedBodyBytes: number }
      ).bufferedBodyBytes;
    await phase("slow and aborted uploads, 4 s", async () => {
      const downBefore = await downEndpoints();
      const end = Date.now() + 4_000;
      let answered408 = 0;
      /** A POST whose body stops after its first part for 1 s (past backendRequest), or a PUT aborted. */
      const upload = async (abort: boolean) => {
        const controller = new AbortController();
        const body = Readable.from(
          (async function* () {
            yield Buffer.alloc(64 * 1024, "x");
            await pause(abort ? 100 : 1_000);
            if (abort) controller.abort();
            yield Buffer.alloc(64 * 1024, "y");
          })(),
        );
        try {
          const res = await request(`${workerUrl}/upload`, {
            // A slow POST streams (the 408 path); an aborted PUT is being buffered (the budget).
            method: abort ? "PUT" : "POST",
            headers: { host: HOST },
            body,
            signal: controller.signal,
          });
          await res.body.text();
          if (res.statusCode === 408) answered408++;
        } catch {
          // the aborted ones
        }
      };
      const uploaders = Array.from({ length: 4 }, async (_, i) => {
        while (Date.now() < end) await upload(i % 2 === 1);
      });
      await Promise.all(uploaders);
      await pause(1_000);
      return {
        answered408,
        ejections: (await downEndpoints()) - downBefore,
        bufferedBytes: await bufferedBytes(),
      };
    });
    await phase("path tricks at a blocked path", async () => {
      let reached = 0;
      const tricks = [
        "/admin",
        "/%61dmin",
        "//admin",
        "/x/%2e%2e/admin",
        "/%2e/admin/x",
        "/admin%2f",
        "/x/..%2fadmin",
        "/x%5c..%5cadmin",
        "/ADMIN/../admin",
      ];
      for (let round = 0; round < 20; round++)
        for (const path of tricks) {
          const res = await request(`${workerUrl}${path}`, { headers: { host: HOST } });
          await res.body.text();
          if (res.statusCode < 300) reached++;
        }
      return { blockedReached: reached };
    });
    loading = false;
    await load;

    const final = await kvBackend.get(poolKey);
    const finalLost = urlsIn(final?.value) === wanted() ? 0 : 1;
    const requests = samples.length;
    const totals = {
      seconds: Math.round((Date.now() - started) / 1000),
      requests,
      clientErrors: results.reduce((n, r) => n + r.clientErrors, 0),
      truncated: results.reduce((n, r) => n + r.truncated, 0),
      retriesPerRequest:
        Math.round(
          (tries.reduce((n, t) => n + Math.max(0, t.tries - 1), 0) / Math.max(1, tries.length)) *
            1000,
        ) / 1000,
      sentAfterRemoval: results.reduce((n, r) => n + (r.sentAfterRemoval ?? 0), 0),
      ejections: results.reduce((n, r) => n + Math.max(0, r.ejections ?? 0), 0),
      bufferedBytesAtEnd: results.at(-2)?.bufferedBytes ?? 0,
      blockedReached: results.reduce((n, r) => n + (r.blockedReached ?? 0), 0),
      lostUpdates: results.reduce((n, r) => n + (r.lostUpdates ?? 0), 0) + finalLost,
      abandonedWrites: kv.abandonedWrites(),
      kv429s: kv.rateLimited(),
    };
    await mkdir(join(ROOT, "bench-results"), { recursive: true });
    await writeFile(
      join(ROOT, "bench-results/chaos.json"),
      `${JSON.stringify({ at: new Date().toISOString(), totals, phases: results }, null, 2)}\n`,
    );
    say();
    say(
      "| phase | requests | client errors | truncated bodies | retries/request | KV converged | sent after removal |",
    );
    say("|---|---|---|---|---|---|---|");
    for (const r of results) {
      say(
        `| ${r.phase} | ${r.requests} | ${r.clientErrors} | ${r.truncated} | ${r.retriesPerRequest} | ${
          r.convergeMs === undefined
            ? r.lostUpdates
              ? "never (lost)"
              : "–"
            : `${(r.convergeMs / 1000).toFixed(1)} s`
        } | ${r.sentAfterRemoval ?? "–"} |`,
      );
    }
    say();
    say(`totals: ${JSON.stringify(totals)}`);
    say("written to bench-results/chaos.json");
    const missed = [
      totals.clientErrors > 0 && `${totals.clientErrors} client errors (target 0)`,
      totals.sentAfterRemoval > 0 &&
        `${totals.sentAfterRemoval} requests to removed endpoints after pickup (target 0)`,
      totals.lostUpdates > 0 && `${totals.lostUpdates} lost endpoint updates (target 0)`,
      totals.ejections > 0 &&
        `${totals.ejections} healthy endpoints ejected by slow or aborted uploads (target 0)`,
      totals.bufferedBytesAtEnd > 0 &&
        `${totals.bufferedBytesAtEnd} bytes of bodies still held after the uploads (target 0)`,
      totals.blockedReached > 0 &&
        `${totals.blockedReached} path tricks reached a backend past the blocked path (target 0)`,
    ].filter(Boolean);
    for (const line of missed) say(`target missed: ${line}`);
    return missed.length === 0 ? 0 : 1;
  } finally {
    clearTimeout(deadline);
    await cleanup();
  }
}

main().then(
  (code) => process.exit(code),
  (error: Error) => {
    process.stderr.write(`npm run chaos failed: ${error.stack ?? error.message}\n`);
    process.exit(1);
  },
);
