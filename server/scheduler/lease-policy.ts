import { sizeClassOf, type SizeClass } from '../../shared/matmul-configs';
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

/** What the coordinator knows of one contributor's speed. */
export interface ThroughputEstimate {
  /** Measured end to end (lease granted → result received), so it includes transfers and queueing. */
  measuredMsPerFlop?: number;
  /** Self-reported at join; used only until a measurement exists. */
  reportedGflops?: number;
  /** Self-reported by tile size class from the contributor's kernel tuning; preferred over reportedGflops. */
  tunedGflops?: Readonly<Record<SizeClass, number>>;
}

/** Slack over the expected time: a lease should lapse only when something is really wrong. */
const SAFETY = 4;

/**
 * A lease lasts long enough for this contributor to fetch the panels and
 * compute the tile: from its measured speed once known, else from its
 * tuned speed for this tile size (or self-benchmark), else from the pessimistic defaults.
 */
export function leaseDurationMs(policy: LeasePolicy, work: ShardWork, speed: ThroughputEstimate = {}): number {
  const flops = shardFlops(work);
  const transferMs = ((work.a.bytes + work.b.bytes + work.rows * work.cols * 4) / policy.assumedBytesPerSecond) * 1000;
  if (speed.measuredMsPerFlop !== undefined) return Math.ceil(policy.baseMs + SAFETY * flops * speed.measuredMsPerFlop);
  const gflops = speed.tunedGflops?.[sizeClassOf(work.rows, work.cols)] ?? speed.reportedGflops ?? policy.assumedFlopsPerSecond / 1e9;
  const computeMs = flops / (gflops * 1e6);
  return Math.ceil(policy.baseMs + SAFETY * computeMs + transferMs);
}

/** Exponentially weighted update, so a contributor that slows down (throttled, busy) is noticed quickly. */
export function updateEstimate(prev: ThroughputEstimate, flops: number, elapsedMs: number): ThroughputEstimate {
  const sample = Math.max(elapsedMs, 1) / flops;
  const measuredMsPerFlop = prev.measuredMsPerFlop === undefined ? sample : 0.7 * prev.measuredMsPerFlop + 0.3 * sample;
  return { ...prev, measuredMsPerFlop };
}
