import type { Logger } from '../logger';
import type { BlobStore } from '../storage/blob-store';
import type { Store } from '../store/store';
import { createCanary, type CanaryShape } from './canary-factory';

/**
 * A few canaries kept ready so a lease request never waits for one to be
 * computed; each is given to one contributor, and a new one is made in the
 * background after each is taken. Their shapes follow the work being handed
 * out, within the factory's limits.
 */
export class CanaryPool {
  private readonly ready: string[] = [];
  private filling: Promise<void> | undefined;
  private closed = false;
  private shape: CanaryShape = { rows: 64, cols: 64, k: 64 };

  constructor(
    private readonly store: Store,
    private readonly blobs: BlobStore,
    private readonly log: Logger,
    private readonly size = 4,
  ) {}

  /** Tells the pool what real tiles look like now. */
  observe(shape: CanaryShape): void {
    this.shape = shape;
  }

  take(): string | undefined {
    const id = this.ready.shift();
    this.refill();
    return id;
  }

  refill(): void {
    if (this.filling || this.closed || this.ready.length >= this.size) return;
    this.filling = (async () => {
      try {
        while (!this.closed && this.ready.length < this.size) this.ready.push(await createCanary(this.store, this.blobs, this.shape));
      } catch (err) {
        this.log.error({ err }, 'could not prepare a canary');
      } finally {
        this.filling = undefined;
      }
    })();
  }

  /** Stops preparing canaries; resolves once none is being written. */
  async close(): Promise<void> {
    this.closed = true;
    await this.filling;
  }
}
