/**
 * Reputation: what the coordinator has learned about a contributor, and the
 * policy that turns it into how much of its work is replicated, how often it
 * gets canaries, and when it is quarantined or banned. Pure functions, so the
 * policy is tested on its own and every store engine applies the same one.
 *
 * Honest contributors never fail Freivalds' check or a canary (the tolerances
 * are derived from float32 rounding), never send results for leases they do
 * not hold and never replay one. So each such event is a strike; strikes
 * decay with clean work, so a GPU that glitched once recovers, while a cheater
 * is banned on the third.
 */

export type TrustStatus = 'active' | 'quarantined' | 'banned';

export interface TrustRecord {
  status: TrustStatus;
  strikes: number;
  /** Verified results since the last strike; every DECAY_AFTER of them removes one. */
  cleanSinceStrike: number;
  verified: number;
  canariesPassed: number;
  canariesFailed: number;
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

export const BAN_STRIKES = 3;
export const DECAY_AFTER = 50;
/** Contributors with fewer verified results than this are new: fully replicated, often tested. */
export const NEW_CONTRIBUTOR_RESULTS = 10;

const STRIKES: Record<TrustEvent, number> = {
  verified: 0,
  'canary-passed': 0,
  rejected: 1,
  'canary-failed': 2,
  'protocol-violation': 1,
  flood: 1,
};

export const FRESH: TrustRecord = { status: 'active', strikes: 0, cleanSinceStrike: 0, verified: 0, canariesPassed: 0, canariesFailed: 0 };

export function applyTrustEvent(rec: TrustRecord, event: TrustEvent): TrustRecord {
  if (rec.status === 'banned') return rec;
  const next = { ...rec };
  const penalty = STRIKES[event];
  if (event === 'verified') next.verified++;
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
 * Share of this contributor's results that must be confirmed by a second
 * contributor before they are accepted, for work without an algebraic check.
 * New and quarantined contributors are always replicated; trusted ones are
 * spot-checked, as BOINC's adaptive replication does.
 */
export function replicationRate(rec: TrustRecord): number {
  if (rec.status !== 'active' || rec.verified < NEW_CONTRIBUTOR_RESULTS) return 1;
  return 0.1;
}

/** Chance that a lease request is answered with a known-answer canary. */
export function canaryRate(rec: TrustRecord): number {
  if (rec.status === 'quarantined') return 0.25;
  if (rec.verified < NEW_CONTRIBUTOR_RESULTS) return 0.15;
  return 0.02;
}
