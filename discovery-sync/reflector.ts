import type { Logger } from "pino";
import { HeapExhausted } from "./heap-guard.ts";
import { type KubeClient, KubeError } from "./kube-client.ts";
import { sameRecord } from "./records.ts";

/**
 * A list/watch cache of one resource, as client-go's reflector keeps one, reducing each object
 * to a record as it arrives. It LISTs in pages (`limit`/`continue`), then watches from the
 * list's resourceVersion with bookmarks; a watch that ends is resumed from the last
 * resourceVersion seen, and `410 Gone` (an expired resourceVersion or continue token) lists
 * again. A relist updates the cache in place and drops what it did not see, so it costs no
 * second copy. Only records that changed signal. Errors back off exponentially (capped at 30 s);
 * until a list has completed after an error, the cache is not `synced`.
 */

interface ObjectMeta {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

export interface ReflectorOptions<R> {
  client: KubeClient;
  /** e.g. /api/v1/services */
  path: string;
  name: string;
  labelSelector?: string;
  /** The record of an object, or undefined when the object is of no interest. */
  reduce: (object: never) => R | undefined;
  /** Called with the object's `namespace/name` whenever its record appears, changes or goes. */
  onChange: (key: string, before: R | undefined, after: R | undefined) => void;
  onError?: (error: unknown) => void;
  /** After each completed LIST. */
  onListed?: () => void;
  /** A watch is open again after an error (no events were missed). */
  onRecovered?: () => void;
  /** After each page of a list: throws HeapExhausted when the heap cannot take more. */
  afterPage?: () => void;
  /** The heap is full: the cache stopped and holds nothing; it starts again only when asked. */
  onHeapExhausted?: (error: HeapExhausted) => void;
  log: Logger;
  pageSize?: number;
  /** First delay after an error; doubles up to 30 s. */
  retryDelayMs?: number;
  /** The server ends each watch after about this long (randomised ±, as client-go does). */
  watchTimeoutSeconds?: number;
  random?: () => number;
}

export const PAGE_SIZE = 500;

function keyOf(object: ObjectMeta): string {
  return `${object.metadata?.namespace ?? ""}/${object.metadata?.name ?? ""}`;
}

/**
 * A paged LIST: calls `onItem` for each object as its page arrives, so that only a page or two of
 * whole objects is alive at a time. The next page is asked for as soon as a page's continue
 * token is known, before its objects are reduced, so that the API server writes one page while
 * this process reads the other. Returns the list's resourceVersion (that of its first page: the
 * API server serves every page from that snapshot).
 */
export async function listPages(
  client: KubeClient,
  path: string,
  labelSelector: string | undefined,
  signal: AbortSignal | undefined,
  onItem: (item: ObjectMeta) => void,
  pageSize = PAGE_SIZE,
  afterPage?: () => void,
): Promise<string | undefined> {
  type Page = {
    metadata?: { resourceVersion?: string; continue?: string };
    items?: ObjectMeta[];
  };
  const request = (continueToken: string | undefined) =>
    client.request<Page>("GET", path, {
      query: { limit: pageSize, continue: continueToken, labelSelector },
      signal,
      timeoutMs: 60_000,
    });
  let resourceVersion: string | undefined;
  let next: Promise<Page> | undefined = request(undefined);
  try {
    while (next) {
      const page: Page = await next;
      resourceVersion ??= page.metadata?.resourceVersion;
      const continueToken = page.metadata?.continue || undefined;
      next = continueToken && !signal?.aborted ? request(continueToken) : undefined;
      for (const item of page.items ?? []) onItem(item);
      afterPage?.();
    }
  } finally {
    // A page asked for before this list stopped (an error, a full heap) is not read.
    next?.catch(() => {});
  }
  return resourceVersion;
}

export class Reflector<R> {
  readonly items = new Map<string, R>();
  /** A LIST has completed since the last error. */
  synced = false;
  failing = false;
  private resourceVersion: string | undefined;
  private abort = new AbortController();
  private running: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private readonly options: ReflectorOptions<R>;

  constructor(options: ReflectorOptions<R>) {
    this.options = options;
  }

  /** Starts listing and watching; resolves after the first LIST completed or failed. */
  start(): Promise<void> {
    this.abort = new AbortController();
    let firstDone: () => void = () => {};
    const first = new Promise<void>((resolve) => {
      firstDone = resolve;
    });
    this.running = this.run(firstDone);
    return first;
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.wake?.();
    await this.running;
  }

  private get stopped(): boolean {
    return this.abort.signal.aborted;
  }

  /** Drops every record, silently: the cache is not synced until it has listed again. */
  clear(): void {
    this.items.clear();
    this.synced = false;
  }

  /** Replaces a record from outside the list/watch (a targeted re-list); signals as a change. */
  replace(key: string, record: R | undefined): void {
    this.set(key, record);
  }

  private set(key: string, record: R | undefined): void {
    const before = this.items.get(key);
    if (record === undefined) {
      if (before === undefined) return;
      this.items.delete(key);
    } else {
      if (before !== undefined && sameRecord(before, record)) return;
      this.items.set(key, record);
    }
    this.options.onChange(key, before, record);
  }

  private async list(): Promise<void> {
    const { client, path, labelSelector, reduce } = this.options;
    this.synced = false; // updated in place: not a consistent view until the list completes
    const started = performance.now();
    const seen = new Set<string>();
    const resourceVersion = await listPages(
      client,
      path,
      labelSelector,
      this.abort.signal,
      (item) => {
        const key = keyOf(item);
        seen.add(key);
        this.set(key, reduce(item as never));
      },
      this.options.pageSize,
      this.options.afterPage,
    );
    if (this.stopped) return;
    for (const key of [...this.items.keys()]) if (!seen.has(key)) this.set(key, undefined);
    this.resourceVersion = resourceVersion;
    this.synced = true;
    this.failing = false;
    this.options.log.info(
      {
        resource: this.options.name,
        objects: seen.size,
        kept: this.items.size,
        ms: Math.round(performance.now() - started),
      },
      "listed",
    );
    this.options.onListed?.();
  }

  /** Watches until the server ends the watch (resume) or says 410 (relist). */
  private async watch(): Promise<"resume" | "relist"> {
    const { client, path, labelSelector, reduce } = this.options;
    const base = this.options.watchTimeoutSeconds ?? 300;
    const timeoutSeconds = Math.floor(base * (1 + (this.options.random ?? Math.random)()));
    const events = client.watch(
      path,
      {
        resourceVersion: this.resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds,
        labelSelector,
      },
      this.abort.signal,
    );
    for await (const event of events) {
      const object = event.object as ObjectMeta & { code?: number; message?: string };
      if (event.type === "OPEN") {
        if (this.failing) {
          this.failing = false;
          this.options.onRecovered?.();
        }
        continue;
      }
      if (event.type === "ERROR") {
        if (object.code === 410) return "relist";
        throw new KubeError(object.code ?? 500, "WatchError", object.message ?? "watch error");
      }
      const version = object.metadata?.resourceVersion;
      if (version) this.resourceVersion = version;
      if (event.type === "BOOKMARK") continue;
      const key = keyOf(object);
      this.set(key, event.type === "DELETED" ? undefined : reduce(object as never));
    }
    return "resume";
  }

  private async pause(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.wake = undefined;
  }

  private async run(firstDone: () => void): Promise<void> {
    const initialDelay = this.options.retryDelayMs ?? 1_000;
    let delay = initialDelay;
    let needList = true;
    while (!this.stopped) {
      try {
        if (needList) {
          await this.list();
          needList = false;
          firstDone();
        }
        if (this.stopped) break;
        const watchedAt = Date.now();
        const outcome = await this.watch();
        // A server that ends every watch at once must not make this loop spin.
        if (outcome === "resume" && Date.now() - watchedAt < 1_000) await this.pause(1_000);
        if (outcome === "relist") {
          this.options.log.info(
            { resource: this.options.name },
            "resourceVersion expired (410); listing again",
          );
          needList = true;
        }
        delay = initialDelay;
      } catch (error) {
        if (this.stopped) break;
        if (error instanceof HeapExhausted) {
          this.clear();
          this.options.onHeapExhausted?.(error);
          break;
        }
        if (error instanceof KubeError && error.status === 410) needList = true;
        this.failing = true;
        if (needList) this.synced = false;
        this.options.onError?.(error);
        this.options.log.warn(
          { resource: this.options.name, error: (error as Error).message, retryInMs: delay },
          needList ? "listing failed; retrying" : "watch failed; resuming",
        );
        firstDone();
        await this.pause(delay);
        delay = Math.min(delay * 2, 30_000);
        // After a failed watch, the cache may have missed events only if the resourceVersion
        // expired meanwhile: resuming from it gets 410 and then lists.
      }
    }
    firstDone();
  }
}
