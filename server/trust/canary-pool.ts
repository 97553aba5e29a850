import type { Logger } from '../logger';
import type { BlobStore } from '../storage/blob-store';
import type { Store } from '../store/store';
import type { WorkerPool } from '../workers/pool';
import { createCanary, type CanaryShape, type PreparedCanary } from './canary-factory';

export interface CanaryPoolOptions {
  /** Computes canary answers off the event loop; without it they are computed in slices on it. */
  workers?: WorkerPool;
  /** Canaries kept ready per tile shape. */
  perShape?: number;
  /** Tile shapes followed at once; the least recently handed out is dropped, with its canaries. */
  maxShapes?: number;
}

const shapeKey = (s: CanaryShape) => `${s.rows}x${s.cols}x${s.k}`;

/** After a shape's canary could not be made (its answer ran past the worker's time limit, say), it is not tried again for this long. */
const RETRY_FAILED_SHAPE_MS = 10 * 60_000;

interface ShapeEntry {
  shape: CanaryShape;
  canaries: PreparedCanary[];
  failedAt?: number;
}

/**
 * A few canaries kept ready per tile shape, so a lease request never waits
 * for one to be computed. The shapes are those of the real tiles being
 * handed out (observe): a canary always has exactly the shape of the real
 * job it is handed out with, and when none of that shape is ready, none is
 * handed out. Each canary goes to one contributor; the pool makes another of
 * its shape in the background.
 */
export class CanaryPool {
  /** Ready canaries by shape key; the Map's order is recency of demand, oldest first. */
  private readonly ready = new Map<string, ShapeEntry>();
  private filling: Promise<void> | undefined;
  private closed = false;
  private readonly perShape: number;
  private readonly maxShapes: number;

  constructor(
    private readonly store: Store,
    private readonly blobs: BlobStore,
    private readonly log: Logger,
    private readonly opts: CanaryPoolOptions = {},
  ) {
    this.perShape = opts.perShape ?? 2;
    this.maxShapes = opts.maxShapes ?? 6;
  }

  /** Real tiles of this shape are being handed out: have canaries of it ready. */
  observe(shape: CanaryShape): void {
    const key = shapeKey(shape);
    const entry: ShapeEntry = this.ready.get(key) ?? { shape: { rows: shape.rows, cols: shape.cols, k: shape.k }, canaries: [] };
    this.ready.delete(key);
    this.ready.set(key, entry);
    while (this.ready.size > this.maxShapes) this.drop(this.ready.keys().next().value!);
    this.refill();
  }

  /** A ready canary of exactly this shape, or undefined: then none goes out this time. */
  take(shape: CanaryShape): PreparedCanary | undefined {
    const canary = this.ready.get(shapeKey(shape))?.canaries.shift();
    this.refill();
    return canary;
  }

  refill(): void {
    if (this.filling || this.closed) return;
    const next = this.wanted();
    if (!next) return;
    this.filling = (async () => {
      try {
        for (let e: ShapeEntry | undefined = next; e && !this.closed; e = this.wanted()) {
          let canary: PreparedCanary;
          try {
            canary = await createCanary(this.store, this.blobs, e.shape, this.opts.workers);
          } catch (err) {
            e.failedAt = Date.now();
            this.log.error({ err, shape: e.shape }, 'could not prepare a canary; none of this shape for a while');
            continue;
          }
          // The shape may have been dropped meanwhile (or the pool closed): then the canary goes at once.
          if (!this.closed && this.ready.get(shapeKey(e.shape)) === e) e.canaries.push(canary);
          else await this.retire(canary);
        }
      } catch (err) {
        this.log.error({ err }, 'could not store a canary');
      } finally {
        this.filling = undefined;
      }
    })();
  }

  /** The most recently demanded shape still short of canaries. */
  private wanted(): ShapeEntry | undefined {
    const now = Date.now();
    return [...this.ready.values()].reverse().find((e) => e.canaries.length < this.perShape && !(e.failedAt !== undefined && now - e.failedAt < RETRY_FAILED_SHAPE_MS));
  }

  private drop(key: string): void {
    const entry = this.ready.get(key);
    this.ready.delete(key);
    for (const c of entry?.canaries ?? []) {
      this.retire(c).catch((err: unknown) => this.log.warn({ err, jobId: c.jobId }, 'could not remove an unused canary'));
    }
  }

  /** A canary that was handed out and given back unanswered: its hidden job ends and its blobs go. */
  async discard(jobId: string): Promise<void> {
    await this.retire({ jobId });
  }

  /** As JobFinisher.retireCanary: the hidden job ends and its blobs go. */
  private async retire(canary: Pick<PreparedCanary, 'jobId'>): Promise<void> {
    await this.store.finishJob(canary.jobId, 'completed', Date.now());
    for (const sha of await this.store.releaseJobPanels(canary.jobId)) await this.blobs.delete(sha);
  }

  /** Stops preparing canaries; resolves once none is being written. */
  async close(): Promise<void> {
    this.closed = true;
    await this.filling;
  }
}
