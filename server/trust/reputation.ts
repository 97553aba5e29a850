/**
 * Reputation: what the coordinator has learned about a contributor, and the
 * policy that turns it into a standing (status and trust level), how often it
 * gets canaries, and when it is quarantined or banned. Pure functions, so the
 * policy is tested on its own and every store engine applies the same one.
 *
 * Honest contributors never fail Freivalds' check or a canary (the tolerances
 * are derived from float32 rounding), never send results for leases they do
 * not hold and never replay one. So each such event is a strike; strikes
 * decay with clean work, so a GPU that glitched once recovers, while a cheater
 * is banned on the third.
 *
 * Trust is earned slowly and lost at once: the level rises only with verified
 * work measured in GFLOP, distinct jobs and hours (not a burst of tiny tiles),
 * and any strike drops it to the bottom until the strike has decayed. The
 * level only sets how often a contributor is tested with canaries; it never
 * lets a result skip a check.
 */

export type TrustStatus = 'active' | 'quarantined' | 'banned';
export type TrustLevel = 'new' | 'established' | 'trusted';

export interface TrustRecord {
  status: TrustStatus;
  strikes: number;
  /** Verified results since the last strike; every DECAY_AFTER of them removes one. */
  cleanSinceStrike: number;
  /** Verified results. Counted by the store when it accepts a result (with the credit), not here. */
  verified: number;
  /** FLOPs of verified work (contributors.flops). Counted by the store with the credit, not here. */
  verifiedFlops: number;
  /**
   * Distinct jobs its verified work spans. A job counts when a verified result's job differs from the
   * previous verified result's, so work that alternates between two jobs counts them more than once:
   * exact enough for a threshold of a few jobs, and it needs one column instead of a set.
   */
  verifiedJobs: number;
  lastVerifiedJob: string | null;
  /** Epoch ms of its first verified result; trust needs hours since then. */
  firstVerifiedAt: number | null;
  canariesPassed: number;
  canariesFailed: number;
  /** Minted from a network where an identity was banned in the PROBATION_MS before (or any time after). */
  probation: boolean;
}

export type TrustEvent =
  | 'verified'
  | 'canary-passed'
  /** Failed Freivalds' check, or lost a replication vote. */
  | 'rejected'
  | 'canary-failed'
  /** A result for a lease it does not hold, a replay, a wrong size, a malformed message. */
  | 'protocol-violation'
  | 'flood';

/** The verified result behind a 'verified' event: what it adds to the contributor's record of work. */
export interface VerifiedWork {
  flops: number;
  jobId: string;
  now: number;
}

/** What it takes to become trusted (TESSERA_TRUSTED_AFTER_*); doubled for identities on probation. */
export interface TrustThresholds {
  gflop: number;
  jobs: number;
  hours: number;
  canaries: number;
}

export const DEFAULT_TRUST_THRESHOLDS: TrustThresholds = { gflop: 50, jobs: 3, hours: 6, canaries: 5 };

export const BAN_STRIKES = 3;
export const DECAY_AFTER = 50;
/** Verified results (and no strikes) after which a contributor is established rather than new. */
export const NEW_CONTRIBUTOR_RESULTS = 10;
/** How long a ban on a network puts identities minted from it on probation. */
export const PROBATION_MS = 30 * 24 * 3_600_000;

/** Chance that a lease request is answered with a known-answer canary, by standing. */
export const CANARY_RATES = { quarantined: 0.25, new: 0.15, established: 0.05, trusted: 0.02 } as const;

const STRIKES: Record<TrustEvent, number> = {
  verified: 0,
  'canary-passed': 0,
  rejected: 1,
  'canary-failed': 2,
  'protocol-violation': 1,
  flood: 1,
};

export const FRESH: TrustRecord = {
  status: 'active',
  strikes: 0,
  cleanSinceStrike: 0,
  verified: 0,
  verifiedFlops: 0,
  verifiedJobs: 0,
  lastVerifiedJob: null,
  firstVerifiedAt: null,
  canariesPassed: 0,
  canariesFailed: 0,
  probation: false,
};

/**
 * The record after one event. `work` (for 'verified') moves the distinct-job count and the first
 * verified time; the result and FLOP counts are the store's, kept with the credit.
 */
export function applyTrustEvent(rec: TrustRecord, event: TrustEvent, work?: VerifiedWork): TrustRecord {
  if (rec.status === 'banned') return rec;
  const next = { ...rec };
  const penalty = STRIKES[event];
  if (event === 'verified' && work) {
    if (work.jobId !== next.lastVerifiedJob) next.verifiedJobs++;
    next.lastVerifiedJob = work.jobId;
    next.firstVerifiedAt ??= work.now;
  }
  if (event === 'canary-passed') next.canariesPassed++;
  if (event === 'canary-failed') next.canariesFailed++;
  if (penalty > 0) {
    next.strikes += penalty;
    next.cleanSinceStrike = 0;
  } else if (next.strikes > 0 && ++next.cleanSinceStrike >= DECAY_AFTER) {
    next.strikes--;
    next.cleanSinceStrike = 0;
  }
  next.status = next.strikes >= BAN_STRIKES ? 'banned' : next.strikes > 0 ? 'quarantined' : 'active';
  return next;
}

/**
 * new → established → trusted. Any strike means new until it decays. On probation there is no
 * established step: new until trusted, at double the thresholds.
 */
export function trustLevel(rec: TrustRecord, now: number, thresholds: TrustThresholds = DEFAULT_TRUST_THRESHOLDS): TrustLevel {
  if (rec.status !== 'active' || rec.strikes > 0) return 'new';
  const times = rec.probation ? 2 : 1;
  const hoursSinceFirst = rec.firstVerifiedAt === null ? 0 : (now - rec.firstVerifiedAt) / 3_600_000;
  const trusted =
    rec.firstVerifiedAt !== null &&
    rec.verifiedFlops / 1e9 >= thresholds.gflop * times &&
    rec.verifiedJobs >= thresholds.jobs * times &&
    hoursSinceFirst >= thresholds.hours * times &&
    rec.canariesPassed >= thresholds.canaries * times;
  if (trusted) return 'trusted';
  return !rec.probation && rec.verified >= NEW_CONTRIBUTOR_RESULTS ? 'established' : 'new';
}

/** Chance that a lease request is answered with a known-answer canary. */
export function canaryRate(rec: TrustRecord, now: number = Date.now(), thresholds: TrustThresholds = DEFAULT_TRUST_THRESHOLDS): number {
  if (rec.status === 'quarantined') return CANARY_RATES.quarantined;
  return CANARY_RATES[trustLevel(rec, now, thresholds)];
}
