import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { createMetrics } from "../../discovery-sync/metrics.ts";

/** The Grafana dashboard and the alert rules name only metrics discovery-sync exports. */

const DIR = fileURLToPath(new URL("../../deploy/monitoring/", import.meta.url));
const exported = new Set(
  (createMetrics().registry.getMetricsAsArray() as { name: string }[]).map((m) => m.name),
);

function namesIn(text: string): string[] {
  return [...new Set(text.match(/switchyard_sync_[a-z_]+/g) ?? [])].map((name) =>
    name.replace(/_(bucket|sum|count)$/, ""),
  );
}

describe("deploy/monitoring", () => {
  it("the alert rules use only exported metrics, and alert on what an operator must know", () => {
    const text = readFileSync(`${DIR}prometheus-rule.yaml`, "utf8");
    const rule = parse(text) as {
      spec: { groups: { rules: { alert: string; expr: string }[] }[] };
    };
    const alerts = rule.spec.groups.flatMap((g) => g.rules.map((r) => r.alert));
    expect(alerts).toEqual(
      expect.arrayContaining([
        "SwitchyardSyncNotLeading",
        "SwitchyardSyncKvWritesFailing",
        "SwitchyardSyncRateLimited",
        "SwitchyardSyncCacheNotSynced",
        "SwitchyardSyncHeapExhausted",
      ]),
    );
    const names = namesIn(text);
    expect(names.length).toBeGreaterThan(3);
    for (const name of names) expect(exported, name).toContain(name);
  });

  it("the Grafana dashboard uses only exported metrics", () => {
    const text = readFileSync(`${DIR}grafana-dashboard.json`, "utf8");
    const dashboard = JSON.parse(text) as { panels: { targets: { expr: string }[] }[] };
    expect(dashboard.panels.length).toBeGreaterThan(5);
    const names = namesIn(text);
    for (const name of names) expect(exported, name).toContain(name);
    // Every exported metric is on the dashboard somewhere.
    for (const name of exported) expect(names, name).toContain(name);
  });
});
