/**
 * Gateway API durations (GEP-2257): one to four `<number><unit>` parts, units h, m, s, ms,
 * e.g. `500ms`, `10s`, `1h30m`. Parsed to milliseconds.
 */
export const DURATION_PATTERN = /^([0-9]{1,5}(h|m|s|ms)){1,4}$/;

const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1 };
const PART = /([0-9]{1,5})(ms|h|m|s)/g;

/** Milliseconds in a Gateway API duration; `undefined` when the text is not one. */
export function parseDuration(text: string): number | undefined {
  if (!DURATION_PATTERN.test(text)) return undefined;
  let total = 0;
  for (const [, amount, unit] of text.matchAll(PART)) {
    total += Number(amount) * (UNIT_MS[unit as string] as number);
  }
  return total;
}

/** The duration in milliseconds; throws on text the schema would have rejected. */
export function durationMs(text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined) throw new Error(`not a duration: ${JSON.stringify(text)}`);
  return ms;
}
