import type { Leaderboard, NetworkSnapshot } from '../../shared/api';
import type { Metrics } from '../metrics/metrics';
import type { LeaderRow, Store, TeamRow } from '../store/store';
import { checkPublicName, MAX_CONTRIBUTOR_NAME, MAX_TEAM_NAME } from './name-skeleton';

const WINDOW_MS = 30_000;
const DAY_MS = 86_400_000;
const LEADERBOARD_TTL_MS = 10_000;

/** Verdicts on names seen on the boards (about 100 µs each to reach; the boards rarely change). */
const passes = new Map<string, boolean>();

/**
 * Names are checked again when shown: one stored before today's rules (an
 * invisible Hangul filler, "Tessera Support") shows as anonymous, not as itself.
 */
function shownName(name: string | null, maxLength: number): string | null {
  if (name === null) return null;
  const key = `${maxLength}:${name}`;
  let ok = passes.get(key);
  if (ok === undefined) {
    if (passes.size >= 10_000) passes.clear();
    passes.set(key, (ok = checkPublicName(name, 'name', maxLength).ok));
  }
  return ok ? name : null;
}

function displayName(row: LeaderRow): string {
  return shownName(row.name, MAX_CONTRIBUTOR_NAME) ?? `anonymous-${row.id.slice(0, 6)}`;
}

/**
 * The public view of the network, computed once per tick for every viewer:
 * viewers subscribe and get the same snapshot, so a thousand open /network
 * pages cost one computation, not a thousand. Every figure comes from
 * aggregates kept as work is verified (per-minute FLOPs, per-day credits,
 * running totals), never from scanning shards.
 */
export class NetworkStats {
  private readonly recent: { at: number; flops: number }[] = [];
  private snapshot: NetworkSnapshot | undefined;
  private readonly listeners = new Set<(s: NetworkSnapshot) => void>();
  private timer: NodeJS.Timeout | undefined;
  private board: { at: number; value: Leaderboard } | undefined;

  constructor(
    private readonly store: Store,
    private readonly metrics: Metrics,
    private readonly tickMs = 2_000,
  ) {}

  /** Called for each verified result. */
  record(flops: number, now = Date.now()): void {
    this.recent.push({ at: now, flops });
  }

  async leaderboard(now = Date.now()): Promise<Leaderboard> {
    const today = Math.floor(now / DAY_MS);
    const [day, week, all] = await Promise.all([this.store.leaderboard(today, 20), this.store.leaderboard(today - 6, 20), this.store.leaderboard(null, 20)]);
    const people = (rows: LeaderRow[]) => rows.map((r, i) => ({ rank: i + 1, name: displayName(r), team: shownName(r.team, MAX_TEAM_NAME), credits: r.credits }));
    // A team has no id to show instead of a name that no longer passes, so it leaves the board; its members stay.
    const teams = (rows: TeamRow[]) => rows.filter((r) => shownName(r.name, MAX_TEAM_NAME) !== null).map((r, i) => ({ rank: i + 1, ...r }));
    return {
      updatedAt: new Date(now).toISOString(),
      contributors: { day: people(day.contributors), week: people(week.contributors), all: people(all.contributors) },
      teams: { day: teams(day.teams), week: teams(week.teams), all: teams(all.teams) },
    };
  }

  /** Day and week boards sum per-day rows; refreshing them every 10 s keeps that cost flat however many watch. */
  private async cachedLeaderboard(now: number): Promise<Leaderboard> {
    if (!this.board || now - this.board.at >= LEADERBOARD_TTL_MS) this.board = { at: now, value: await this.leaderboard(now) };
    return this.board.value;
  }

  async compute(now = Date.now()): Promise<NetworkSnapshot> {
    while (this.recent.length > 0 && this.recent[0]!.at < now - WINDOW_MS) this.recent.shift();
    const flops = this.recent.reduce((n, r) => n + r.flops, 0);
    const connected = this.metrics.connectedContributors();
    const byVendor: Record<string, number> = {};
    for (const c of connected) byVendor[c.vendor] = (byVendor[c.vendor] ?? 0) + 1;
    const minute = Math.floor(now / 60_000);
    const series = (await this.store.networkSeries(minute - 24 * 60)).map((r) => {
      // The current minute is still filling: divide by the seconds elapsed, not by 60.
      const seconds = r.minute === minute ? Math.max(1, (now - minute * 60_000) / 1000) : 60;
      return { t: r.minute * 60, gflops: r.flops / seconds / 1e9 };
    });
    this.snapshot = {
      at: new Date(now).toISOString(),
      online: connected.length,
      byVendor,
      gflopsNow: flops / (WINDOW_MS / 1000) / 1e9,
      jobsCompleted: (await this.store.jobCounts()).completed ?? 0,
      series,
      leaderboard: await this.cachedLeaderboard(now),
    };
    return this.snapshot;
  }

  /** The latest snapshot, computed afresh when no viewer has kept it current. */
  async current(now = Date.now()): Promise<NetworkSnapshot> {
    if (this.snapshot && now - Date.parse(this.snapshot.at) < this.tickMs) return this.snapshot;
    return this.compute(now);
  }

  subscribe(listener: (s: NetworkSnapshot) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  start(onError: (err: unknown) => void): void {
    this.timer = setInterval(() => {
      if (this.listeners.size === 0) return; // nobody is watching: nothing to push, nothing to compute
      this.compute().then((s) => {
        for (const l of this.listeners) l(s);
      }, onError);
    }, this.tickMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
