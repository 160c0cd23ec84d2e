// Writes schema/*.schema.json from the zod contract; with --check, fails when they are stale.
import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { jsonSchemas } from "../contract/json-schema.ts";

const check = process.argv.includes("--check");
const dir = fileURLToPath(new URL("../schema/", import.meta.url));
let stale = 0;
for (const [file, schema] of Object.entries(jsonSchemas())) {
  const text = `${JSON.stringify(schema, null, 2)}\n`;
  const path = dir + file;
  const current = await readFile(path, "utf8").catch(() => "");
  if (current === text) continue;
  if (check) {
    console.error(
      `schema/${file} is out of date with contract/: run \`npm run schema\` and commit it.`,
    );
    stale++;
  } else {
    await writeFile(path, text);
    console.log(`wrote schema/${file}`);
  }
}
process.exitCode = stale ? 1 : 0;
