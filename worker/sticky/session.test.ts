import { describe, expect, it } from "vitest";
import { parseRoutesDocument } from "../../contract/index.ts";
import { ALL_HEALTHY } from "../core/health.ts";
import { compileSnapshot } from "../core/snapshot.ts";
import type { Logger } from "../log.ts";
import { Sessions } from "./session.ts";

const quiet: Logger = { info() {}, warn() {}, error() {} };

function stickyRule() {
  const parsed = parseRoutesDocument({
    version: 1,
    routes: [
      {
        name: "shop",
        rules: [
          {
            backendRefs: [{ pool: "p" }],
            sessionPersistence: { cookieName: "shop", idleTimeout: "30m" },
          },
        ],
      },
    ],
    pools: {
      p: { endpoints: [{ url: "https://a.example.net" }, { url: "https://b.example.net" }] },
    },
  });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  const snapshot = compileSnapshot({ generation: "g", routes: parsed.value, kvPools: new Map() });
  const rule = snapshot.rule(0, 0);
  if (!rule) throw new Error("no rule");
  return rule;
}

const env = { STICKY_SECRET: "a-secret-of-thirty-two-characters!!" };
const request = (cookie?: string) =>
  new Request("https://shop.example.com/", cookie ? { headers: { cookie } } : {});

describe("Sessions", () => {
  it("opens a returning client's session and keeps its cookie without a promise", async () => {
    const rule = stickyRule();
    const endpoint = rule.tiers[0]?.refs[0]?.pool?.endpoints[1];
    if (!endpoint) throw new Error("no endpoint");
    const sessions = new Sessions(quiet);
    const nowMs = 1_800_000_000_000;
    const first = await sessions.open(rule, request(), env, nowMs, ALL_HEALTHY);
    expect(first?.sticky).toBeUndefined();
    const setCookie = await first?.stamp(endpoint.id, nowMs, true);
    const cookie = setCookie?.split(";")[0];
    expect(cookie).toMatch(/^shop=/);

    // The first time the cookie comes back, its MAC is verified: a promise.
    const verifying = sessions.open(rule, request(cookie), env, nowMs + 1_000, ALL_HEALTHY);
    expect(verifying).toBeInstanceOf(Promise);
    expect((await verifying)?.sticky?.endpoint.id).toBe(endpoint.id);

    // From then on: no promise to open it, and none to learn the cookie still holds.
    const returning = sessions.open(rule, request(cookie), env, nowMs + 2_000, ALL_HEALTHY);
    expect(returning).not.toBeInstanceOf(Promise);
    const session = returning as Exclude<typeof returning, Promise<unknown>>;
    expect(session?.sticky?.endpoint.id).toBe(endpoint.id);
    expect(session?.stamp(endpoint.id, nowMs + 2_000, true)).toBeUndefined();
    // Served by another endpoint, the cookie must change.
    const other = rule.tiers[0]?.refs[0]?.pool?.endpoints[0];
    expect(await session?.stamp(other?.id ?? "", nowMs + 2_000, true)).toMatch(/^shop=/);
  });

  it("never remembers a tampered cookie: each time it comes, it is verified and refused", async () => {
    const rule = stickyRule();
    const sessions = new Sessions(quiet);
    const nowMs = 1_800_000_000_000;
    const first = await sessions.open(rule, request(), env, nowMs, ALL_HEALTHY);
    const endpointId = rule.tiers[0]?.refs[0]?.pool?.endpoints[0]?.id ?? "";
    const cookie = (await first?.stamp(endpointId, nowMs, true))?.split(";")[0] ?? "";
    const tampered = `${cookie.slice(0, -2)}${cookie.endsWith("AA") ? "BB" : "AA"}`;
    for (let i = 0; i < 2; i++) {
      const opened = sessions.open(rule, request(tampered), env, nowMs, ALL_HEALTHY);
      expect(opened).toBeInstanceOf(Promise);
      expect((await opened)?.sticky).toBeUndefined();
    }
  });
});
