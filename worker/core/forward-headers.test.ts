import { describe, expect, it } from "vitest";
import { forwardHeaders, requestIdOf } from "./forward-headers.ts";

const facts = {
  clientIp: "203.0.113.7",
  proto: "https",
  host: "shop.example.com",
  requestId: "minted",
  websocket: false,
};

describe("forwardHeaders", () => {
  it("drops the headers Connection names, the proxy's own and the client's address", () => {
    const incoming = new Headers({
      connection: "keep-alive, x-private",
      "x-private": "1",
      "proxy-authorization": "Basic x",
      "proxy-connection": "keep-alive",
      "cf-connecting-ip": "203.0.113.7",
      accept: "text/html",
    });
    const headers = forwardHeaders(incoming, facts);
    for (const name of [
      "x-private",
      "proxy-authorization",
      "proxy-connection",
      "cf-connecting-ip",
    ]) {
      expect(headers.has(name), name).toBe(false);
    }
    expect(headers.get("accept")).toBe("text/html");
    // Connection, Keep-Alive, TE, Trailer, Transfer-Encoding and Upgrade are the runtime's to
    // drop when it writes the subrequest, and CF-Worker the platform's to set:
    // test/worker/proxy.test.ts checks what a backend gets.
  });

  it("sets X-Forwarded-For, -Proto and -Host", () => {
    const headers = forwardHeaders(new Headers({ "x-forwarded-for": "198.51.100.1" }), facts);
    expect(headers.get("x-forwarded-for")).toBe("198.51.100.1, 203.0.113.7");
    expect(headers.get("x-forwarded-proto")).toBe("https");
    expect(headers.get("x-forwarded-host")).toBe("shop.example.com");
    const already = forwardHeaders(
      new Headers({ "x-forwarded-for": "198.51.100.1, 203.0.113.7" }),
      facts,
    );
    expect(already.get("x-forwarded-for")).toBe("198.51.100.1, 203.0.113.7");
  });

  it("ignores Connection tokens that are no header names instead of throwing (found by fuzzing)", () => {
    const incoming = new Headers({
      connection: "(, keep-alive, x-drop",
      "x-drop": "1",
      "x-keep": "2",
    });
    const out = forwardHeaders(incoming, facts);
    expect(out.has("x-drop")).toBe(false);
    expect(out.get("x-keep")).toBe("2");
  });

  it("replaces a client's X-Forwarded-For with its address when told to", () => {
    // A client claiming to be inside, in each header a backend might read the address from.
    const forged = new Headers({
      "x-forwarded-for": "10.0.0.1",
      forwarded: "for=10.0.0.1;proto=https",
      "x-real-ip": "10.0.0.1",
    });
    const replaced = forwardHeaders(forged, { ...facts, forwardedFor: "replace" });
    expect(replaced.get("x-forwarded-for")).toBe("203.0.113.7");
    expect(replaced.has("forwarded")).toBe(false);
    expect(replaced.has("x-real-ip")).toBe(false);
    // Appending keeps what the client sent, as a list to trust only as far as your own proxies.
    expect(forwardHeaders(forged, facts).get("forwarded")).toBe("for=10.0.0.1;proto=https");
    const withoutAddress = forwardHeaders(forged, {
      ...facts,
      clientIp: null,
      forwardedFor: "replace",
    });
    expect(withoutAddress.has("x-forwarded-for")).toBe(false);
  });

  it("keeps a sane X-Request-Id and mints one otherwise", () => {
    expect(requestIdOf("abc-123", () => "minted")).toBe("abc-123");
    expect(requestIdOf("has space", () => "minted")).toBe("minted");
    expect(requestIdOf(null, () => "minted")).toBe("minted");
    expect(
      forwardHeaders(new Headers({ "x-request-id": "other" }), facts).get("x-request-id"),
    ).toBe("minted");
  });

  it("keeps Upgrade for a WebSocket handshake", () => {
    const incoming = new Headers({
      connection: "Upgrade",
      upgrade: "websocket",
      "sec-websocket-key": "k",
    });
    const headers = forwardHeaders(incoming, { ...facts, websocket: true });
    expect(headers.get("upgrade")).toBe("websocket");
    expect(headers.get("sec-websocket-key")).toBe("k");
  });
});
