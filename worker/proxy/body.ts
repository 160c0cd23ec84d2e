/**
 * Request bodies and retries. A body can be read once, so a request that may be retried has its
 * body buffered, up to a limit, and each try sends the buffered bytes; a larger body streams to
 * the first try only, and the request is not retried.
 */

export type BodyPlan =
  | { kind: "none" }
  | { kind: "buffered"; bytes: Uint8Array }
  | { kind: "stream"; stream: ReadableStream<Uint8Array> };

/**
 * How many bytes of request bodies an isolate holds for retries at once (32 MiB by default):
 * each request's own limit is `retry.bodyBufferBytes`, but many large uploads at the same time
 * must not exhaust the isolate's 128 MB. A body that does not fit streams once, unretried.
 */
export class BufferBudget {
  private used = 0;
  readonly capacity: number;
  constructor(capacity = 32 * 1024 * 1024) {
    this.capacity = capacity;
  }
  reserve(bytes: number): boolean {
    if (this.used + bytes > this.capacity) return false;
    this.used += bytes;
    return true;
  }
  release(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
  }
  get inUse(): number {
    return this.used;
  }
}

export function replayable(plan: BodyPlan): boolean {
  return plan.kind !== "stream";
}

/** The body for one try; a streamed body can serve one try only. */
export function bodyForTry(plan: BodyPlan): BodyInit | null {
  switch (plan.kind) {
    case "none":
      return null;
    case "buffered":
      return plan.bytes;
    case "stream":
      return plan.stream;
  }
}

/** Chunks already read, then the rest of the reader: the whole body as one stream again. */
function rejoin(
  head: Uint8Array[],
  reader: ReadableStreamDefaultReader<Uint8Array>,
): ReadableStream<Uint8Array> {
  let index = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (index < head.length) {
        controller.enqueue(head[index++] as Uint8Array);
        return;
      }
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

/** The client's body did not arrive within the rule's timeout while it was buffered. */
export class BodyTimeout extends Error {
  readonly timeoutMs: number;
  constructor(timeoutMs: number) {
    super(`the request body did not arrive within ${timeoutMs} ms`);
    this.timeoutMs = timeoutMs;
  }
}

/**
 * Buffers the body when it may be retried and fits in `limit` bytes and in the isolate's
 * `budget`; streams it otherwise. A buffered body holds its bytes of the budget until the caller
 * releases them (`budget.release(plan.bytes.byteLength)`). Buffering waits on the client at most
 * `timeoutMs` (the rule's timeout): past it, it stops with BodyTimeout, having released what it
 * held.
 */
export async function planBody(
  request: Request,
  limit: number,
  mayRetry: boolean,
  budget: BufferBudget,
  timeoutMs?: number,
): Promise<BodyPlan> {
  const body = request.body;
  if (body === null) return { kind: "none" };
  if (!mayRetry) return { kind: "stream", stream: body };
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > limit) return { kind: "stream", stream: body };
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired =
    timeoutMs === undefined
      ? undefined
      : new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new BodyTimeout(timeoutMs)), timeoutMs);
        });
  expired?.catch(() => {}); // raced below; unobserved once the body is in
  for (;;) {
    let read: ReadableStreamReadResult<Uint8Array>;
    try {
      read = await (expired ? Promise.race([reader.read(), expired]) : reader.read());
    } catch (error) {
      // The client went away, its body failed, or it did not come in time: what was reserved
      // for it goes back to the isolate's budget.
      clearTimeout(timer);
      budget.release(total);
      if (error instanceof BodyTimeout) reader.cancel(error).catch(() => {});
      throw error;
    }
    const { done, value } = read;
    if (done) {
      clearTimeout(timer);
      return { kind: "buffered", bytes: concat(chunks, total) };
    }
    chunks.push(value);
    if (total + value.byteLength > limit || !budget.reserve(value.byteLength)) {
      clearTimeout(timer);
      budget.release(total);
      return { kind: "stream", stream: rejoin(chunks, reader) };
    }
    total += value.byteLength;
  }
}
