import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { DesiredPool } from "./desired.ts";
import { bodyHash, plan, type StoredKey } from "./plan.ts";

const NOW = "2026-11-25T10:00:00Z";
const options = { cluster: "eu1", now: NOW, allowMassDelete: false };

function desired(...pools: [string, string[]][]): Map<string, DesiredPool> {
  return new Map(
    pools.map(([key, urls]) => [
      key,
      { key, service: "ns/svc", body: { endpoints: urls.map((url) => ({ url })) } },
    ]),
  );
}

const owned = (key: string, urls: string[], generation = 3): StoredKey => ({
  key,
  metadata: {
    owner: "switchyard-sync",
    cluster: "eu1",
    generation,
    hash: bodyHash({ endpoints: urls.map((url) => ({ url })) }),
  },
});

describe("plan", () => {
  it("creates new pools at generation 1 with ownership metadata", () => {
    const result = plan(desired(["pool:a", ["http://a:1"]]), [], options);
    expect(result.puts).toHaveLength(1);
    const put = result.puts[0]!;
    expect(JSON.parse(put.value)).toEqual({
      version: 1,
      generation: 1,
      updatedAt: NOW,
      endpoints: [{ url: "http://a:1" }],
    });
    expect(put.metadata).toMatchObject({ owner: "switchyard-sync", cluster: "eu1", generation: 1 });
  });

  it("drops no-ops and continues the generation KV holds", () => {
    const result = plan(
      desired(["pool:same", ["http://a:1"]], ["pool:changed", ["http://b:2"]]),
      [owned("pool:same", ["http://a:1"]), owned("pool:changed", ["http://b:1"], 41)],
      options,
    );
    expect(result.unchanged).toBe(1);
    expect(result.puts.map((p) => [p.key, p.metadata.generation])).toEqual([["pool:changed", 42]]);
  });

  it("never writes or deletes a key it does not own, and reports the conflict", () => {
    const stored: StoredKey[] = [
      { key: "pool:hand", metadata: null },
      {
        key: "pool:other",
        metadata: { owner: "switchyard-sync", cluster: "us1", generation: 1, hash: "x" },
      },
      owned("pool:gone", ["http://g:1"]),
      owned("pool:kept", ["http://k:1"]),
      owned("pool:kept2", ["http://k:2"]),
    ];
    const result = plan(
      desired(
        ["pool:hand", ["http://h:1"]],
        ["pool:other", ["http://o:1"]],
        ["pool:kept", ["http://k:1"]],
        ["pool:kept2", ["http://k:2"]],
      ),
      stored,
      options,
    );
    expect(result.puts).toEqual([]);
    expect(result.deletes).toEqual(["pool:gone"]);
    expect(result.conflicts).toEqual([
      { key: "pool:hand", heldBy: "a key without discovery-sync ownership (hand-kept)" },
      { key: "pool:other", heldBy: 'discovery-sync of cluster "us1"' },
    ]);
  });

  it("keeps writes but refuses deletes of more than half the owned pools unless allowed", () => {
    const stored = ["a", "b", "c"].map((k) => owned(`pool:${k}`, ["http://x:1"]));
    const next = desired(["pool:a", ["http://x:1"]], ["pool:new", ["http://n:1"]]);
    const refused = plan(next, stored, options);
    expect(refused.deletes).toEqual([]);
    expect(refused.refusedDeletes).toEqual(["pool:b", "pool:c"]);
    expect(refused.puts.map((p) => p.key)).toEqual(["pool:new"]);
    expect(plan(next, stored, { ...options, allowMassDelete: true }).deletes).toEqual([
      "pool:b",
      "pool:c",
    ]);
    expect(
      plan(desired(["pool:a", ["http://x:1"]], ["pool:b", ["http://x:1"]]), stored, options)
        .deletes,
    ).toEqual(["pool:c"]);
  });

  it("only ever touches keys it owns or that are free, and applying it reaches the desired state", () => {
    const key = fc.constantFrom("pool:a", "pool:b", "pool:c", "pool:d", "pool:e");
    const urls = fc.array(fc.constantFrom("http://1:1", "http://2:2"), { maxLength: 2 });
    const holder = fc.constantFrom<"mine" | "other" | "hand">("mine", "other", "hand");
    fc.assert(
      fc.property(
        fc.dictionary(key, urls),
        fc.dictionary(key, fc.tuple(holder, urls)),
        (want, have) => {
          const stored: StoredKey[] = Object.entries(have).map(([k, [who, u]]) =>
            who === "mine"
              ? owned(k, u)
              : {
                  key: k,
                  metadata: who === "hand" ? null : { owner: "switchyard-sync", cluster: "us1" },
                },
          );
          const result = plan(desired(...Object.entries(want)), stored, {
            ...options,
            allowMassDelete: true,
          });
          const foreign = new Set(
            Object.entries(have)
              .filter(([, [who]]) => who !== "mine")
              .map(([k]) => k),
          );
          for (const k of [...result.puts.map((p) => p.key), ...result.deletes])
            expect(foreign.has(k)).toBe(false);
          // Apply it to a model of KV, then plan again: nothing left to do.
          const after = new Map(stored.map((s) => [s.key, s]));
          for (const k of result.deletes) after.delete(k);
          for (const p of result.puts) after.set(p.key, { key: p.key, metadata: p.metadata });
          const again = plan(desired(...Object.entries(want)), [...after.values()], {
            ...options,
            allowMassDelete: true,
          });
          expect(again.puts).toEqual([]);
          expect(again.deletes).toEqual([]);
        },
      ),
    );
  });
});
