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
        },
      ),
      { numRuns: 2_000 },
    );
  });
});
