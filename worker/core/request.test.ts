import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { requestUrl } from "./request.ts";

const PARTS = ["href", "protocol", "host", "port", "pathname", "search", "origin"] as const;

/** What `URL` says of a URL as the runtime serializes a request's. */
function expected(href: string) {
  const url = new URL(href);
  return Object.fromEntries(PARTS.map((part) => [part, url[part]]));
}

function parts(href: string) {
  const url = requestUrl(href);
  return Object.fromEntries(PARTS.map((part) => [part, url[part]]));
}

describe("requestUrl", () => {
  it("reads what URL reads", () => {
    for (const text of [
      "http://shop.example.com/",
      "https://shop.example.com:8443/cart/items?id=7&id=8",
      "http://127.0.0.1:8787/a%20b/?",
      "http://[::1]:8080/x?y#z",
      "http://[2001:db8::1]/",
      "https://x.test/?#",
      "http://x.test/%2e%2E/?q=%3F",
      "http://x.test:80/",
    ])
      expect(parts(new URL(text).href), text).toEqual(expected(text));
  });

  it("normalizes what the runtime hands over as the client sent it, as URL does", () => {
    // request.url in workerd keeps the request line and Host as they came.
    for (const text of [
      "http://x.test/a/../b",
      "http://x.test/a/./b/%2e%2E/c",
      "http://x.test/.well-known/x",
      "http://EXAMPLE.com:80/x",
      "http://Example.COM:8080/x",
      "https://x.test:443/",
      "http://x.test:08080/",
      "http://x.test:/",
      "http://x.test/a\\b",
      "http://[::1]:80/x",
      "http://[0:0:0:0:0:0:0:1]/x",
      "http://127.1/",
      "http://0x7f.0.0.1/",
      "http://x.test/a b?c d",
      "http://x.test/ü?ü='",
      "http://x.test/a#frag",
    ])
      expect(parts(text), text).toEqual(expected(text));
    expect(requestUrl("http://x.test/a/../b").pathname).toBe("/b");
  });

  it("reads what URL reads of any http(s) URL as a client may send it", () => {
    const host = fc.oneof(
      fc.domain(),
      fc.domain().map((d) => d.toUpperCase()),
      fc.constantFrom("127.0.0.1", "127.1", "0x7f.1", "10.0.0.010", "a.1", "x.test.", "[::1]"),
      fc.constantFrom("[0:0:0:0:0:0:0:1]", "xn--bcher-kva.example", "x_y.test"),
    );
    const port = fc.constantFrom("", ":", ":80", ":443", ":8080", ":08080", ":65535", ":1");
    const segment = fc
      .array(
        fc.constantFrom(
          ...["a", "B", "0", ".", "..", "%2e", "%2E", "-", "_", "~", "!", "$", "&", "'", "("],
          ...["*", "+", ",", ";", "=", ":", "@", "%", "%zz", "%41", "\\", "|", "^", "[", "]"],
          ...['"', " ", "ü", "{", "`", "<"],
        ),
        { maxLength: 4 },
      )
      .map((chars) => chars.join(""));
    const path = fc.array(segment, { maxLength: 5 }).map((segments) => `/${segments.join("/")}`);
    const query = fc.option(
      fc
        .array(fc.constantFrom("a", "=", "&", "'", '"', " ", "?", "/", "%", "%2e", "ü", "."), {
          maxLength: 6,
        })
        .map((chars) => `?${chars.join("")}`),
    );
    fc.assert(
      fc.property(
        fc.constantFrom("http", "https"),
        host,
        port,
        path,
        query,
        (scheme, h, p, pathname, q) => {
          const text = `${scheme}://${h}${p}${pathname}${q ?? ""}`;
          try {
            new URL(text);
          } catch {
            return; // a URL no runtime would hand over
          }
          expect(parts(text), text).toEqual(expected(text));
          // The Host header as sent, which the runtime builds request.url from.
          expect(requestUrl(text).rawHost, text).toBe(`${h}${p}`);
        },
      ),
      { numRuns: 5_000 },
    );
  });

  it("reads what URL reads of any http(s) URL, once serialized", () => {
    fc.assert(
      fc.property(
        fc.webUrl({
          validSchemes: ["http", "https"],
          withQueryParameters: true,
          withFragments: true,
        }),
        fc.option(fc.integer({ min: 1, max: 65_535 })),
        (text, port) => {
          const url = new URL(text);
          if (port !== null) url.port = String(port);
          expect(parts(url.href)).toEqual(expected(url.href));
          expect(requestUrl(url.href).rawHost).toBe(url.host);
        },
      ),
      { numRuns: 2_000 },
    );
  });
});
