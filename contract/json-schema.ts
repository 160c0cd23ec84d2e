import { poolDocumentSchema } from "./pool.ts";
import { routesDocumentSchema } from "./routes.ts";
import * as z from "./zod.ts";

/** JSON Schemas generated from the zod contract, keyed by the file they are shipped as. */
export function jsonSchemas(): Record<string, unknown> {
  const generate = (schema: z.ZodMiniType, id: string, title: string) => ({
    $id: `https://switchyard.dev/schema/${id}`,
    title,
    ...z.toJSONSchema(schema, { io: "input", unrepresentable: "any", target: "draft-2020-12" }),
  });
  return {
    "routes.schema.json": generate(
      routesDocumentSchema,
      "routes.schema.json",
      "Switchyard routes document",
    ),
    "pool.schema.json": generate(
      poolDocumentSchema,
      "pool.schema.json",
      "Switchyard pool document",
    ),
  };
}
