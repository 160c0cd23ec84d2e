import { describe, expect, it } from "vitest";
import type { Echo } from "../../local/backends.ts";
import { healthKey } from "../../worker/core/health.ts";
import {
  defaultCookieName,
  endpointRef,
  importStickyKey,
  signSticky,
} from "../../worker/sticky/cookie.ts";
import { backends, CookieJar, harness, pool, putRoutes } from "./harness.ts";

const b = backends();
/** The default cookie of route "shop", rule "web". */
const COOKIE = defaultCookieName("shop", "web");

function stickyDoc(endpoints: unknown[], sessionPersistence: Record<string, unknown> = {}) {
  return {
    version: 1,
    routes: [
      { name: "shop", rules: [{ name: "web", backendRefs: [{ pool: "p" }], sessionPersistence }] },
    ],
    pools: { p: { endpoints } },
  };
}

type H = ReturnType<typeof harness>;

async function visit(h: H, jar: CookieJar, url = "http://shop.test/"): Promise<string> {
  const response = await h.fetch(url, { headers: jar.header() });
  jar.take(response);
  return ((await response.json()) as Echo).backend;
}

describe("session persistence", () => {
  it("keeps a client with a real cookie jar on one backend across 100 requests", async () => {
    // Three clients over two backends: without stickiness round-robin would move each of them.
    await putRoutes(stickyDoc([{ url: b.a }, { url: b.b }], { idleTimeout: "30m" }));
    const h = harness();
    const jars = [new CookieJar(), new CookieJar(), new CookieJar()];
    const seen = jars.map(() => new Set<string>());
    for (let i = 0; i < 100; i++) {
      for (const [j, jar] of jars.entries()) seen[j]!.add(await visit(h, jar));
      h.advance(1_000);
    }
    expect(seen.map((s) => s.size)).toEqual([1, 1, 1]);
    expect(new Set(seen.map((s) => [...s][0]))).toEqual(new Set(["a", "b"])); // WRR still spreads new clients
    const first = jars[0]!.received[0]!;
    expect(first).toMatch(
      new RegExp(
        `^${COOKIE}=[A-Za-z0-9_-]{16}\\.[0-9a-z]+\\.[0-9a-z]+\\.[A-Za-z0-9_-]{22}; Path=/; HttpOnly; SameSite=Lax$`,
      ),
    );
    expect(first).not.toContain("127.0.0.1");
    expect(jars[0]!.received.length).toBeLessThan(100); // re-sent only to move last-seen on
  });

  it("sets Secure when the request came over https, and uses the rule's cookieName", async () => {
    await putRoutes(stickyDoc([{ url: b.a }], { cookieName: "shop-session" }));
    const response = await harness().fetch("https://shop.test/");
    expect(response.headers.get("set-cookie")).toMatch(
      /^shop-session=.*; Path=\/; HttpOnly; SameSite=Lax; Secure$/,
    );
  });

  it('gives a "Permanent" lifetime a Max-Age: what is left of absoluteTimeout', async () => {
    await putRoutes(
      stickyDoc([{ url: b.a }], {
        absoluteTimeout: "2h",
        idleTimeout: "30m",
        cookieConfig: { lifetimeType: "Permanent" },
      }),
    );
    const response = await harness().fetch("http://shop.test/");
    expect(response.headers.get("set-cookie")).toMatch(
      new RegExp(`^${COOKIE}=[^;]+; Path=/; HttpOnly; SameSite=Lax; Max-Age=7200$`),
    );
  });

  it("takes Gateway API's sessionName; a session cookie still ends after absoluteTimeout", async () => {
    await putRoutes(
      stickyDoc([{ url: b.a }, { url: b.b }], {
        sessionName: "shop-browser",
        absoluteTimeout: "1h",
      }),
    );
    const h = harness();
    const jar = new CookieJar();
    const backend = await visit(h, jar);
    expect(jar.received[0]).toMatch(/^shop-browser=[^;]+; Path=\/; HttpOnly; SameSite=Lax$/);
    for (let i = 0; i < 5; i++) expect(await visit(h, jar)).toBe(backend);
    // The browser keeps it for its session; the worker still ends it after absoluteTimeout.
    h.advance(61 * 60_000);
    await visit(h, jar);
    expect(jar.received.at(-1)?.split(".")[1]).not.toBe(jar.received[0]?.split(".")[1]);
  });

  it("ignores and replaces a tampered cookie, serving the request normally", async () => {
    await putRoutes(stickyDoc([{ url: b.a }, { url: b.b }]));
    const h = harness();
    const jar = new CookieJar();
    const backend = await visit(h, jar);
    const value = jar.cookies.get(COOKIE)!;
    const other = backend === "a" ? "b" : "a";
    // Claim the other backend's reference with the old signature.
    const otherId = h.store.snapshot!.pool("p")!.endpoints.find((e) => e.origin === b[other])!.id;
    const otherRef = await endpointRef(await importStickyKey("test secret"), otherId);
    jar.cookies.set(COOKIE, `${otherRef}${value.slice(16)}`);
    const response = await h.fetch("http://shop.test/", { headers: jar.header() });
    expect(response.status).toBe(200);
    const replaced = response.headers.get("set-cookie");
    expect(replaced).toMatch(new RegExp(`^${COOKIE}=`));
    expect(replaced).not.toContain(otherRef + value.slice(16));
  });

  it("replaces an expired or idle cookie", async () => {
    await putRoutes(
      stickyDoc([{ url: b.a }, { url: b.b }], { absoluteTimeout: "1h", idleTimeout: "10m" }),
    );
    const h = harness();
    const jar = new CookieJar();
    await visit(h, jar);
    const issued = jar.cookies.get(COOKIE);
    h.advance(11 * 60_000); // idle for longer than idleTimeout
    await visit(h, jar);
    const afterIdle = jar.cookies.get(COOKIE)!;
    expect(afterIdle).not.toBe(issued);
    expect(afterIdle.split(".")[1]).not.toBe(issued!.split(".")[1]); // a new session: new issue time
    for (let i = 0; i < 7; i++) {
      h.advance(9 * 60_000); // active, but past absoluteTimeout in the end
      await visit(h, jar);
    }
    expect(jar.cookies.get(COOKIE)!.split(".")[1]).not.toBe(afterIdle.split(".")[1]);
  });

  it("moves a session whose endpoint left the pool", async () => {
    await putRoutes(stickyDoc([{ url: b.a }, { url: b.b }]));
    const h = harness({ refreshSeconds: 1 });
    const jar = new CookieJar();
    const first = await visit(h, jar);
    const remaining = first === "a" ? b.b : b.a;
    await putRoutes(stickyDoc([{ url: remaining }, { url: b.c }]));
    h.advance(1_000);
    await visit(h, jar); // refresh runs after this one
    const moved = await visit(h, jar);
    expect(moved).not.toBe(first);
    expect(await visit(h, jar)).toBe(moved);
  });

  it("keeps sessions on a draining or weight 0 endpoint and gives it no new ones", async () => {
    await putRoutes(stickyDoc([{ url: b.a }, { url: b.b }]));
    const h = harness({ refreshSeconds: 1 });
    const jar = new CookieJar();
    let onB = await visit(h, jar);
    while (onB !== "b") {
      jar.cookies.clear();
      onB = await visit(h, jar);
    }
    for (const change of [{ state: "draining" }, { weight: 0 }]) {
      await putRoutes(stickyDoc([{ url: b.a }, { url: b.b, ...change }]));
      h.advance(1_000);
      await visit(h, new CookieJar());
      for (let i = 0; i < 5; i++) expect(await visit(h, jar)).toBe("b");
      for (let i = 0; i < 5; i++) expect(await visit(h, new CookieJar())).toBe("a");
    }
  });

  it("honours a cookie signed with STICKY_SECRET_PREVIOUS and re-signs it", async () => {
    await putRoutes(stickyDoc([{ url: b.a }, { url: b.b }, { url: b.c }]));
    const jar = new CookieJar();
    const before = await visit(harness({ env: { STICKY_SECRET: "old secret" } }), jar);
    const oldValue = jar.cookies.get(COOKIE);
    const rotated = harness({
      env: { STICKY_SECRET: "new secret", STICKY_SECRET_PREVIOUS: "old secret" },
    });
    expect(await visit(rotated, jar)).toBe(before);
    const resigned = jar.cookies.get(COOKIE);
    expect(resigned).not.toBe(oldValue);
    const onlyNew = harness({ env: { STICKY_SECRET: "new secret" } });
    for (let i = 0; i < 3; i++) expect(await visit(onlyNew, jar)).toBe(before);
  });

  it("ignores an oversized cookie and moves a session off an ejected endpoint", async () => {
    await putRoutes({
      version: 1,
      routes: [
        {
          name: "shop",
          rules: [
            {
              name: "web",
              backendRefs: [{ pool: "p" }],
              sessionPersistence: {},
              retry: { attempts: 1, codes: [503] },
              passiveHealth: { failureCodes: [503] },
            },
          ],
        },
      ],
      pools: { p: pool(b.unavailable, b.c, b.d) },
    });
    const h = harness();
    const big = await h.fetch("http://shop.test/", {
      headers: { cookie: `${COOKIE}=${"x".repeat(4000)}` },
    });
    expect(big.status).toBe(200);
    expect(big.headers.get("set-cookie")).toMatch(new RegExp(`^${COOKIE}=[A-Za-z0-9_-]{16}\\.`));
    for (let i = 0; i < 30; i++) await h.fetch("http://shop.test/"); // the 503 endpoint gets ejected
    const ejected = h.store.snapshot!.pool("p")!.endpoints[0]!;
    expect(h.state.health.view(healthKey("p", ejected.id), 1_000_000).ejectedUntil).toBeDefined();
    const jar = new CookieJar();
    jar.cookies.set(COOKIE, "placeholder");
    // A valid cookie naming the ejected endpoint, as its last visit would have set it.
    const key = await importStickyKey("test secret");
    const ejectedRef = await endpointRef(key, ejected.id);
    jar.cookies.set(
      COOKIE,
      await signSticky(
        { endpointRef: ejectedRef, issuedAt: 1000, lastSeen: 1000 },
        { name: COOKIE, routeName: "shop", ruleName: "web" },
        key,
      ),
    );
    const backend = await visit(h, jar);
    expect(["c", "d"]).toContain(backend);
    expect(jar.cookies.get(COOKIE)!.startsWith(ejectedRef)).toBe(false);
  });
});
