import { MessageChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { runTask, type TaskInput, type TaskKind, type TaskMessage, type TaskOutput } from './tasks';

export interface WorkerPoolOptions {
  /** Worker threads; the coordinator uses every core by default (TESSERA_VERIFY_THREADS). */
  threads: number;
  /** Longest a task may run once a thread has started it; then the thread is stopped and the task fails with TaskUnavailable('timeout'). */
  taskTimeoutMs: number;
  /**
   * Tasks estimated below this many floating-point operations run in place:
   * about a millisecond of work, less than handing it to a thread costs.
   */
  inlineBelowFlops?: number;
  /** Tasks waiting for a thread beyond which new ones are refused (TaskUnavailable('overloaded')). */
  maxQueue?: number;
  /**
   * Bytes copied for tasks waiting or running (tiles not in shared memory)
   * beyond which new ones are refused: a flood of large results must not
   * fill memory while it waits for a thread.
   */
  maxPendingBytes?: number;
}

export type TaskUnavailableReason = 'timeout' | 'overloaded' | 'failed' | 'closed';

/** A task that could not give an answer; never evidence against whoever sent the data it was checking. */
export class TaskUnavailable extends Error {
  constructor(
    readonly reason: TaskUnavailableReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TaskUnavailable';
  }
}

const DEFAULT_INLINE_BELOW = 2e6;
const DEFAULT_MAX_PENDING_BYTES = 512 * 1024 * 1024;

/**
 * The task's input with every typed array that is not in shared memory
 * replaced by a copy of just its elements, moved to the thread rather than
 * cloned: a view into a larger buffer (a socket's, say) would otherwise be
 * cloned with the whole buffer, and the caller keeps its own array intact.
 */
function detach<T>(input: T, copy = true): { value: T; transfer: ArrayBuffer[]; bytes: number } {
  const transfer: ArrayBuffer[] = [];
  let bytes = 0;
  const walk = (v: unknown, depth: number): unknown => {
    if (ArrayBuffer.isView(v)) {
      if (v.buffer instanceof SharedArrayBuffer || !(v instanceof Float32Array || v instanceof Uint8Array)) return v;
      bytes += v.byteLength;
      if (!copy) return v;
      const own = v.slice();
      transfer.push(own.buffer as ArrayBuffer);
      return own;
    }
    if (depth > 2 || v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    return Object.fromEntries(Object.entries(v).map(([key, x]) => [key, walk(x, depth + 1)]));
  };
  return { value: walk(input, 0) as T, transfer, bytes };
}

/**
 * Heavy, CPU-bound work (verification now, model planning later) on worker
 * threads, so the event loop keeps serving requests and sockets whatever a
 * requester's model or a contributor's tile costs to check. Threads start on
 * the first task that needs one and stay for the pool's life. Typed arrays on
 * SharedArrayBuffers (see PanelCache) reach a thread without a copy; others
 * are copied once.
 */
export class WorkerPool {
  private piscina: Piscina | undefined;
  private closed = false;
  private readonly inlineBelow: number;
  private pendingBytes = 0;

  constructor(private readonly opts: WorkerPoolOptions) {
    if (!(opts.threads >= 1)) throw new RangeError(`a worker pool needs at least one thread, got ${opts.threads}`);
    this.inlineBelow = opts.inlineBelowFlops ?? DEFAULT_INLINE_BELOW;
  }

  get threads(): number {
    return this.opts.threads;
  }

  get taskTimeoutMs(): number {
    return this.opts.taskTimeoutMs;
  }

  /** Tasks waiting for a thread now. */
  get queued(): number {
    return this.piscina?.queueSize ?? 0;
  }

  /**
   * Runs a task and returns its output; `flops` estimates its cost. Rejects
   * with TaskUnavailable when it ran past its time limit, the queue is full,
   * its thread died (out of memory, say), it threw, or the pool is closed.
   */
  async run<K extends TaskKind>(kind: K, input: TaskInput<K>, flops: number, opts: { timeoutMs?: number } = {}): Promise<TaskOutput<K>> {
    const timeoutMs = opts.timeoutMs ?? this.opts.taskTimeoutMs;
    if (this.closed) throw new TaskUnavailable('closed', 'the worker pool is closed');
    if (flops < this.inlineBelow) {
      try {
        return runTask(kind, input);
      } catch (err) {
        throw new TaskUnavailable('failed', `task ${kind} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
    }
    const maxBytes = this.opts.maxPendingBytes ?? DEFAULT_MAX_PENDING_BYTES;
    if (this.pendingBytes > 0 && this.pendingBytes + detach(input, false).bytes > maxBytes) {
      throw new TaskUnavailable('overloaded', `${this.pendingBytes} bytes of tasks are waiting or running, over the ${maxBytes}-byte limit`);
    }
    const { value, transfer, bytes } = detach(input);
    this.pendingBytes += bytes;
    const pool = this.start();
    const { port1, port2 } = new MessageChannel();
    const abort = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    port1.once('message', () => {
      timer = setTimeout(() => abort.abort(), timeoutMs);
    });
    const msg: TaskMessage<K> = { kind, input: value, started: port2 };
    try {
      return (await pool.run(msg, { signal: abort.signal, transferList: [port2, ...transfer] })) as TaskOutput<K>;
    } catch (err) {
      if (abort.signal.aborted) throw new TaskUnavailable('timeout', `task ${kind} ran longer than ${timeoutMs} ms and was stopped`);
      if (this.closed) throw new TaskUnavailable('closed', 'the worker pool is closed');
      const message = err instanceof Error ? err.message : String(err);
      if (/queue is at limit/i.test(message)) throw new TaskUnavailable('overloaded', `${this.queued} tasks are waiting for a thread`);
      throw new TaskUnavailable('failed', `task ${kind} failed: ${message}`, { cause: err });
    } finally {
      this.pendingBytes -= bytes;
      clearTimeout(timer);
      port1.close();
    }
  }

  private start(): Piscina {
    this.piscina ??= new Piscina({
      filename: new URL('./worker-entry.mjs', import.meta.url).href,
      minThreads: this.opts.threads,
      maxThreads: this.opts.threads,
      idleTimeout: Infinity,
      maxQueue: this.opts.maxQueue ?? this.opts.threads * 64,
    });
    return this.piscina;
  }

  /** Stops the threads; tasks still running or waiting fail with TaskUnavailable('closed'). */
  async close(): Promise<void> {
    this.closed = true;
    const pool = this.piscina;
    this.piscina = undefined;
    await pool?.destroy();
  }
}
