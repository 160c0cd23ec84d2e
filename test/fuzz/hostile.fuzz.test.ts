import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compileRegex, regexProblem } from "../../contract/index.ts";
import { forwardHeaders } from "../../worker/core/forward-headers.ts";
import {
  endpointRef,
  importStickyKey,
  readSticky,
  signSticky,
} from "../../worker/sticky/cookie.ts";
import { RUNS } from "./runs.ts";

/** What a client controls, fuzzed: cookies, regular expressions' inputs, request headers. */

const limits = { absoluteTimeoutS: 3600, idleTimeoutS: 600 };
const scope = { name: "c", routeName: "shop", ruleName: "web" };

describe("hostile input, fuzzed", async () => {
  const key = await importStickyKey("fuzz secret");
  const genuine = await signSticky(
    { endpointRef: await endpointRef(key, "0123456789abcd"), issuedAt: 1_000, lastSeen: 1_000 },
    scope,
    key,
  );

  it("a cookie that is forged, truncated or extended is refused, never thrown on", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string({ maxLength: 300 }),
          fc.nat(genuine.length).map((n) => genuine.slice(0, n)),
          fc.string({ maxLength: 20 }).map((s) => genuine + s),
          fc
            .tuple(fc.nat(genuine.length - 1), fc.string({ minLength: 1, maxLength: 1 }))
            .map(([at, ch]) => genuine.slice(0, at) + ch + genuine.slice(at + 1)),
        ),
        async (text) => {
          const read = await readSticky(text, scope, [key], 1_100, limits);
          if (read.ok) expect(text).toBe(genuine);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it("a genuine cookie replayed on another rule or cookie name is refused", async () => {
    await fc.assert(
      fc.asyncProperty(fc.string(), fc.string(), fc.string(), async (name, routeName, ruleName) => {
        fc.pre(name !== scope.name || routeName !== scope.routeName || ruleName !== scope.ruleName);
        const read = await readSticky(genuine, { name, routeName, ruleName }, [key], 1_100, limits);
        expect(read.ok).toBe(false);
      }),
      { numRuns: RUNS },
    );
  });

  it("regular expressions run within a CPU bound on any pattern and input", () => {
    const patterns = fc.oneof(
      fc.stringMatching(/^[a-z()+*?|.\\[\]^$]{1,12}$/),
      fc.constantFrom("(a+)+", "(a|a)*b", "(a*)*$", "(.*a){12}", "([a-z]+)*!"),
    );
    const inputs = fc.oneof(
      fc.string({ maxLength: 64 }),
      fc.nat(4_096).map((n) => `${"a".repeat(n)}!`),
    );
    fc.assert(
      fc.property(patterns, inputs, (pattern, input) => {
        if (regexProblem(pattern) !== undefined) return;
        const started = performance.now();
        compileRegex(pattern).test(input);
        expect(performance.now() - started).toBeLessThan(250);
      }),
      { numRuns: RUNS },
    );
  });

  it("request headers of any size and repetition pass the forwarding policy without a throw", () => {
    const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,30}$/);
    const value = fc.oneof(
      fc.stringMatching(/^[ -~]{0,200}$/),
      fc.nat(16_000).map((n) => "x".repeat(n)),
    );
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.oneof(
              name,
              fc.constantFrom(
                "host",
                "connection",
                "x-forwarded-for",
                "upgrade",
                "te",
                "proxy-authorization",
              ),
            ),
            value,
          ),
          { maxLength: 30 },
        ),
        (pairs) => {
          const incoming = new Headers();
          for (const [n, v] of pairs) incoming.append(n, v.trim());
          const out = forwardHeaders(incoming, {
            clientIp: "203.0.113.7",
            proto: "https",
            host: "shop.example.com",
            requestId: "req-1",
            websocket: false,
            forwardedFor: "replace",
          });
          expect(out.get("x-forwarded-for")).toBe("203.0.113.7");
          expect(out.has("proxy-authorization")).toBe(false);
          // What Connection names stays on this hop (Connection itself, TE and the like are the
          // runtime's to drop when it writes the subrequest).
          for (const token of (incoming.get("connection") ?? "").split(",")) {
            const named = token.trim().toLowerCase();
            const ours = named.startsWith("x-forwarded-") || named === "x-request-id"; // set after
            if (
              /^[a-z][a-z0-9-]*$/.test(named) &&
              !ours &&
              named !== "keep-alive" &&
              named !== "close"
            )
              expect(out.has(named), named).toBe(false);
          }
          expect(out.get("x-forwarded-host")).toBe("shop.example.com");
        },
      ),
      { numRuns: RUNS },
    );
  });
});
