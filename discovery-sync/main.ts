// `npm run sync -- [flags]`: discovery-sync's entry point.
import { pino } from "pino";
import { EXIT_OK, runOnce, SyncDaemon } from "./daemon.ts";
import { type KubeConnection, loadKubeConnection } from "./kubeconfig.ts";
import { parseSettings, SettingsError, USAGE } from "./settings.ts";

const EXIT_SETTINGS = 2;

async function main(): Promise<number> {
  let settings: ReturnType<typeof parseSettings>;
  try {
    settings = parseSettings(process.argv.slice(2), process.env);
  } catch (error) {
    if (!(error instanceof SettingsError)) throw error;
    process.stderr.write(
      `discovery-sync: bad or missing settings:\n${error.problems.map((p) => `  - ${p}`).join("\n")}\n\n${USAGE}`,
    );
    return EXIT_SETTINGS;
  }
  if (settings === "help") {
    process.stdout.write(USAGE);
    return EXIT_OK;
  }
  const log = pino(
    {
      base: { service: "discovery-sync", owner: settings.owner },
      level: process.env.LOG_LEVEL ?? "info",
    },
    // --dry-run prints the plan on stdout: its log goes to stderr.
    pino.destination(settings.dryRun ? 2 : 1),
  );
  let kc: KubeConnection;
  try {
    kc = loadKubeConnection();
  } catch (error) {
    process.stderr.write(`discovery-sync: cannot load a kubeconfig: ${(error as Error).message}\n`);
    return EXIT_SETTINGS;
  }
  if (settings.once || settings.dryRun) {
    return runOnce(settings, kc, log, (line) => process.stdout.write(`${line}\n`));
  }
  const daemon = new SyncDaemon(settings, kc, log);
  const stopped = new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, "stopping: finishing the write in flight");
      daemon.stop().then(
        () => resolve(EXIT_OK),
        (error: Error) => {
          log.error({ error: error.message }, "stopping failed");
          resolve(1);
        },
      );
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
  await daemon.start();
  return stopped;
}

main().then(
  (code) => process.exit(code),
  (error: Error) => {
    process.stderr.write(`discovery-sync failed: ${error.stack ?? error.message}\n`);
    process.exit(1);
  },
);
