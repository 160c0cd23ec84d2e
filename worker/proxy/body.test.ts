import { describe, expect, it } from "vitest";
import { BufferBudget, planBody } from "./body.ts";

const post = (text: string) =>
  new Request("http://x.test/", {
    method: "POST",
    body: text,
    headers: { "content-type": "text/plain" },
  });

describe("planBody", () => {
  it("buffers a body that may be retried within the request's limit and the isolate's budget", async () => {
    const budget = new BufferBudget(16);
    const first = await planBody(post("12345678"), 1024, true, budget);
    expect(first.kind).toBe("buffered");
    expect(budget.inUse).toBe(8);
    // The isolate holds 8 of 16 bytes: a second body of 10 does not fit and streams, unretried.
    const second = await planBody(post("0123456789"), 1024, true, budget);
    expect(second.kind).toBe("stream");
    expect(budget.inUse).toBe(8);
    if (second.kind === "stream")
      expect(await new Response(second.stream).text()).toBe("0123456789");
    budget.release(8);
    expect((await planBody(post("0123456789"), 1024, true, budget)).kind).toBe("buffered");
  });

  it("gives back what it reserved when the client's body fails while it is read (an aborted upload)", async () => {
    const budget = new BufferBudget();
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 3) controller.enqueue(new Uint8Array(1000));
        else controller.error(new Error("Network connection lost."));
      },
    });
    const request = new Request("http://x.test/", {
      method: "PUT",
      body,
      duplex: "half",
    } as RequestInit);
    await expect(planBody(request, 1024 * 1024, true, budget)).rejects.toThrow("connection lost");
    expect(budget.inUse).toBe(0);
  });

  it("streams a body over the request's limit, and one that will not be retried", async () => {
    const budget = new BufferBudget();
    expect((await planBody(post("x".repeat(100)), 10, true, budget)).kind).toBe("stream");
    expect((await planBody(post("x"), 10, false, budget)).kind).toBe("stream");
    expect(budget.inUse).toBe(0);
  });
});
