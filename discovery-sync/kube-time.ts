/**
 * Kubernetes time formats (pure). `MicroTime` (a Lease's acquireTime and renewTime) is written
 * and parsed with Go's layout `2006-01-02T15:04:05.000000Z07:00`: exactly six fractional digits.
 * `Time` (creationTimestamp and most others) is RFC 3339 in whole seconds.
 */

const MICRO_TIME = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\.(\d{6})(Z|[+-]\d{2}:\d{2})$/;

/** `ms` since the epoch as a MicroTime: `2026-11-29T12:00:00.123000Z`. */
export function microTime(ms: number): string {
  const iso = new Date(ms).toISOString(); // 2026-11-29T12:00:00.123Z
  return `${iso.slice(0, 23)}000Z`;
}

/** Milliseconds since the epoch of a MicroTime, or undefined when it is not one. */
export function parseMicroTime(text: unknown): number | undefined {
  if (typeof text !== "string") return undefined;
  const match = MICRO_TIME.exec(text);
  if (!match) return undefined;
  const ms = Date.parse(`${match[1]}.${(match[2] as string).slice(0, 3)}${match[3]}`);
  return Number.isNaN(ms) ? undefined : ms;
}

/** `ms` since the epoch as a Kubernetes `Time`: RFC 3339 in whole seconds. */
export function kubeTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19)}Z`;
}
