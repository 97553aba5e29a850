import type { ShardWork } from '../store/store';

export interface LeasePolicy {
  /** Fixed allowance for latency, queueing in the page and a slow start. */
  baseMs: number;
  /** Throughput assumed for a contributor we have not measured: a weak integrated GPU. */
  assumedFlopsPerSecond: number;
  /** Download rate assumed for the panels: a slow home link. */
  assumedBytesPerSecond: number;
}

export const DEFAULT_LEASE_POLICY: Omit<LeasePolicy, 'baseMs'> = {
  assumedFlopsPerSecond: 5e9,
  assumedBytesPerSecond: 2e6,
};

export function shardFlops(work: Pick<ShardWork, 'rows' | 'cols' | 'k'>): number {
  return 2 * work.rows * work.cols * work.k;
}

/** A lease lasts long enough for a slow contributor to fetch the panels and compute the tile. */
export function leaseDurationMs(policy: LeasePolicy, work: ShardWork): number {
  const computeMs = (shardFlops(work) / policy.assumedFlopsPerSecond) * 1000;
  const transferMs = ((work.a.bytes + work.b.bytes + work.rows * work.cols * 4) / policy.assumedBytesPerSecond) * 1000;
  return Math.ceil(policy.baseMs + computeMs + transferMs);
}
