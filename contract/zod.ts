/**
 * The contract's zod: `zod/mini`, whose schemas cost a cold worker a fraction of what the classic
 * API's do, with zod's English messages for the few checks that carry none of ours. Only what
 * the contract uses is re-exported, and none of zod's namespaces: a bundler keeps a namespace it
 * is handed whole, and zod's `core` takes in every locale (358 KiB).
 */
import { config } from "zod/mini";
import en from "zod/v4/locales/en.js";

config(en());

export type { input, output, ZodMiniType } from "zod/mini";
export {
  _default,
  array,
  boolean,
  describe,
  enum,
  gte,
  int,
  literal,
  lte,
  maxLength,
  meta,
  minLength,
  number,
  object,
  optional,
  record,
  regex,
  strictObject,
  string,
  superRefine,
  toJSONSchema,
  union,
  unknown,
} from "zod/mini";
export { type $RefinementCtx, $ZodError, type $ZodIssue } from "zod/v4/core";
