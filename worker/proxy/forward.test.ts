import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { clientLocation } from "./forward.ts";

describe("clientLocation", () => {
  const endpoint = "http://10.1.2.3:8080";
  const client = "https://shop.example.com";

  it("says an endpoint's own URL in the client's scheme and host", () => {
    expect(clientLocation("http://10.1.2.3:8080/login", endpoint, client)).toBe(`${client}/login`);
    expect(clientLocation("HTTP://10.1.2.3:8080?x=1", endpoint, client)).toBe(`${client}/?x=1`);
    expect(clientLocation("http://10.1.2.3:8080", endpoint, client)).toBe(`${client}/`);
  });

  it("reads the value as a browser does: no spelling of the endpoint's address gets through", () => {
    for (const value of [
      "//10.1.2.3:8080/next",
      "http://u@10.1.2.3:8080/next",
      "http://u:p@10.1.2.3:8080/next",
      "http://10.1.2.3.:8080/next",
      "http:\\\\10.1.2.3:8080\\next",
      "https://10.1.2.3:8080/next",
      " http://10.1.2.3:8080/next",
      "HTTP://10.1.2.3:8080/next",
    ])
      expect(clientLocation(value, endpoint, client), value).toBe(`${client}/next`);
  });

  it("leaves relative URLs, other hosts and other ports alone", () => {
    for (const value of [
      "/login",
      "https://id.example.com/x",
      "http://10.1.2.3:80801/x",
      "http://10.1.2.30:8080/",
    ])
      expect(clientLocation(value, endpoint, client)).toBe(value);
  });

  it("never lets the endpoint's origin through", () => {
    fc.assert(
      fc.property(fc.webPath(), fc.webQueryParameters(), (path, query) => {
        const rewritten = clientLocation(
          `${endpoint}${path}${query ? `?${query}` : ""}`,
          endpoint,
          client,
        );
        expect(rewritten.startsWith(client)).toBe(true);
        expect(rewritten).not.toContain("10.1.2.3");
      }),
    );
  });
});
