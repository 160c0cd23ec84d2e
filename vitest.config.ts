import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "node",
          environment: "node",
          // Suites here spawn processes (sync, wrangler, chromium) on a 2-core machine.
          testTimeout: 30_000,
          include: [
            "contract/**/*.test.ts",
            "worker/**/*.test.ts",
            "discovery-sync/**/*.test.ts",
            "scripts/**/*.test.ts",
            "test/node/**/*.test.ts",
            "test/fuzz/**/*.test.ts",
          ],
        },
      },
      {
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                SWITCHYARD_LOCAL: "true",
                DEBUG_HEADERS: "true",
                CONFIG_REFRESH_SECONDS: "10",
                STICKY_SECRET: "test secret",
              },
            },
          }),
        ],
        test: {
          name: "workerd",
          include: ["test/worker/**/*.test.ts"],
          globalSetup: ["test/worker/backends.setup.ts"],
        },
      },
    ],
  },
});
