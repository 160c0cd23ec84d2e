import { getHeapSpaceStatistics, getHeapStatistics } from "node:v8";

/**
 * Memory bounded by design: whether this process can still hold what it is holding. The heap in
 * use is read against its limit (`SYNC_HEAP_MB` and the young generation) after each page of a
 * list and every few seconds; past `ratio` of the limit, a full collection tells live data from
 * garbage (the sync runs with --expose-gc), and only what is still in use after it counts. A
 * process over the line is told so in time to say why and stop holding the cluster, rather
 * than be killed by V8 in the middle of a list and restarted into the same list.
 */

export interface HeapReading {
  usedBytes: number;
  limitBytes: number;
}

/** The share of the heap limit that live data may reach: one more page of a list must still fit. */
export const HEAP_RATIO = 0.75;

/**
 * The old generation against `--max-old-space-size` when the process was started with it (as
 * `npm run sync` and the image start it): that is the space V8 runs out of, whatever the young
 * generation holds. Otherwise the whole heap against its limit.
 */
export function readHeap(): HeapReading {
  const flag = process.execArgv
    .map((arg) => /^--max-old-space-size=(\d+)$/.exec(arg))
    .find((match) => match !== null);
  if (!flag) {
    const stats = getHeapStatistics();
    return { usedBytes: stats.used_heap_size, limitBytes: stats.heap_size_limit };
  }
  let used = 0;
  for (const space of getHeapSpaceStatistics())
    if (!space.space_name.startsWith("new_")) used += space.space_used_size;
  return { usedBytes: used, limitBytes: Number(flag[1]) * 2 ** 20 };
}

export class HeapGuard {
  private readonly read: () => HeapReading;
  private readonly collect: (() => void) | undefined;
  private readonly ratio: number;

  constructor(options: { read?: () => HeapReading; collect?: () => void; ratio?: number } = {}) {
    this.read = options.read ?? readHeap;
    this.collect = options.collect ?? (globalThis as { gc?: () => void }).gc;
    this.ratio = options.ratio ?? HEAP_RATIO;
  }

  /** The reading when live data is past the line, else undefined. */
  over(): HeapReading | undefined {
    let reading = this.read();
    if (reading.usedBytes < this.ratio * reading.limitBytes) return undefined;
    if (this.collect) {
      this.collect();
      reading = this.read();
    }
    return reading.usedBytes < this.ratio * reading.limitBytes ? undefined : reading;
  }
}

/** A list stopped because the heap is full: the caches are to be dropped. */
export class HeapExhausted extends Error {
  readonly reading: HeapReading;
  constructor(reading: HeapReading) {
    super(
      `the heap is ${Math.round(reading.usedBytes / 2 ** 20)} MiB of its ${Math.round(reading.limitBytes / 2 ** 20)} MiB limit after a full collection`,
    );
    this.reading = reading;
  }
}
