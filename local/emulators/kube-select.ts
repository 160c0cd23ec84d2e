import { StoreError } from "./kube-store.ts";

/**
 * Label and field selectors as the API server parses them: equality (`a=b`, `a==b`, `a!=b`),
 * set-based (`a in (x,y)`, `a notin (x)`), existence (`a`, `!a`), comma-separated and ANDed.
 * A selector that does not parse is a 400 BadRequest; a field selector may only name the fields
 * the resource supports (metadata.name and metadata.namespace here).
 */

export type Requirement =
  | { key: string; op: "=" | "!="; values: [string] }
  | { key: string; op: "in" | "notin"; values: string[] }
  | { key: string; op: "exists" | "!" };

const NAME = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$/;
const PREFIX = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function badRequest(message: string): StoreError {
  return new StoreError(400, "BadRequest", `unable to parse requirement: ${message}`);
}

function checkKey(key: string): string {
  const slash = key.indexOf("/");
  const name = slash === -1 ? key : key.slice(slash + 1);
  const prefix = slash === -1 ? undefined : key.slice(0, slash);
  if (!NAME.test(name) || (prefix !== undefined && (prefix.length > 253 || !PREFIX.test(prefix))))
    throw badRequest(
      `key: Invalid value: ${JSON.stringify(key)}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`,
    );
  return key;
}

function checkValue(value: string): string {
  if (value !== "" && !NAME.test(value))
    throw badRequest(
      `values[0]: Invalid value: ${JSON.stringify(value)}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`,
    );
  return value;
}

/** Splits on commas outside parentheses. */
function terms(selector: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let current = "";
  for (const ch of selector) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) {
      out.push(current);
      current = "";
    } else current += ch;
  }
  out.push(current);
  return out.map((t) => t.trim());
}

export function parseLabelSelector(selector: string | null): Requirement[] {
  if (!selector || selector.trim() === "") return [];
  return terms(selector).map((term): Requirement => {
    if (term === "") throw badRequest("found ',', expected: identifier");
    const set = /^(\S+)\s+(in|notin)\s*\((.*)\)$/.exec(term);
    if (set) {
      const values = (set[3] as string).split(",").map((v) => checkValue(v.trim()));
      return { key: checkKey(set[1] as string), op: set[2] as "in" | "notin", values };
    }
    if (/\s(in|notin)\s/.test(` ${term} `) && !term.includes("("))
      throw badRequest(`found '${term.split(/\s+/).pop()}', expected: '('`);
    const equality = /^([^=!\s]+)\s*(==|=|!=)\s*(.*)$/.exec(term);
    if (equality) {
      const op = equality[2] === "!=" ? "!=" : "=";
      return {
        key: checkKey(equality[1] as string),
        op,
        values: [checkValue(equality[3] as string)],
      };
    }
    if (term.startsWith("!")) return { key: checkKey(term.slice(1).trim()), op: "!" };
    return { key: checkKey(term), op: "exists" };
  });
}

export function matches(
  labels: Record<string, string> | undefined,
  requirements: Requirement[],
): boolean {
  const have = labels ?? {};
  return requirements.every((r) => {
    const present = Object.hasOwn(have, r.key);
    const value = have[r.key];
    switch (r.op) {
      case "exists":
        return present;
      case "!":
        return !present;
      case "=":
        return present && value === r.values[0];
      case "!=":
        return !present || value !== r.values[0];
      case "in":
        return present && r.values.includes(value as string);
      case "notin":
        return !present || !r.values.includes(value as string);
    }
    return false;
  });
}

export interface FieldRequirement {
  field: "metadata.name" | "metadata.namespace";
  op: "=" | "!=";
  value: string;
}

const FIELDS = new Set(["metadata.name", "metadata.namespace"]);

export function parseFieldSelector(selector: string | null): FieldRequirement[] {
  if (!selector || selector.trim() === "") return [];
  return selector.split(",").map((raw) => {
    const term = raw.trim();
    const match = /^([^=!]+)(==|=|!=)(.*)$/.exec(term);
    if (!match)
      throw new StoreError(
        400,
        "BadRequest",
        `invalid selector: '${term}'; can't understand '${term}'`,
      );
    const field = match[1] as string;
    if (!FIELDS.has(field))
      throw new StoreError(400, "BadRequest", `field label not supported: ${field}`);
    return {
      field: field as FieldRequirement["field"],
      op: match[2] === "!=" ? "!=" : "=",
      value: match[3] as string,
    };
  });
}

export function matchesFields(
  metadata: { name: string; namespace?: string },
  requirements: FieldRequirement[],
): boolean {
  return requirements.every((r) => {
    const value = r.field === "metadata.name" ? metadata.name : (metadata.namespace ?? "");
    return r.op === "=" ? value === r.value : value !== r.value;
  });
}
