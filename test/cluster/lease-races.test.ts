import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { submitMatmul, waitForJob } from '../support/coordinator';
import { startCluster, startClusterServices, type ClusterServices, type TestCluster } from '../support/cluster';
import { randomMatrix } from '../support/matrices';
import { SimContributor } from '../support/sim-contributor';

/**
 * Many contributors over two coordinators racing for the same shards for a
 * minute (TESSERA_RACE_SECONDS to change it): jobs of 100 tiles keep coming,
 * alternately on each node, and every grant and acceptance is counted in the
 * database itself, none duplicated.
 */

const CONTRIBUTORS = 200;
const JOBS = 3;
const RACE_MS = Number(process.env.TESSERA_RACE_SECONDS ?? 60) * 1000;
/** Jobs queued or running at once while the race lasts: enough that no contributor waits long for work. */
const IN_FLIGHT = 2;

let services: ClusterServices;
let cluster: TestCluster | undefined;
const sims: SimContributor[] = [];

beforeAll(async () => {
  services = await startClusterServices();
}, 120_000);
afterAll(async () => {
  for (const s of sims.splice(0)) s.disconnect();
  await cluster?.stop();
  await services?.stop();
});

describe('lease races across coordinators', () => {
  it(`never holds two live leases on a shard and accepts each shard once, with ${CONTRIBUTORS} contributors on two nodes`, async () => {
    // No speculation: a second lease of a shard is legitimate only after the first one lapsed.
    cluster = await startCluster(services, 2, { TESSERA_CANARIES: 'off', TESSERA_TARGET_TILES: '100', TESSERA_SPECULATE_AFTER_MS: '600000' });
    const nodes = cluster.nodes.map((n) => n!.url);
    const jobs: Awaited<ReturnType<typeof submitMatmul>>[] = [];
    const submit = async () => {
      const j = jobs.length;
      jobs.push(await submitMatmul(nodes[j % 2]!, { rows: 640, cols: 8, data: randomMatrix(640, 8, j) }, { rows: 8, cols: 640, data: randomMatrix(8, 640, 100 + j) }));
    };
    for (let j = 0; j < JOBS; j++) await submit();

    const db = cluster.db;
    const one = async (sql: string) => (await db.query<{ n: number }>(sql)).rows[0]!.n;
    // Grants: watched while they happen, each look one consistent snapshot: never two live leases of one shard.
    // (Timestamps cannot show it afterwards: a grant's time is taken before its transaction waits for its turn.)
    const doubled = `SELECT count(*)::int AS n FROM (SELECT shard_id FROM leases WHERE state = 'active' GROUP BY shard_id HAVING count(*) > 1) d`;
    let watching = true;
    let looks = 0;
    let doubleLeased = 0;
    const watcher = (async () => {
      while (watching) {
        doubleLeased += await one(doubled);
        looks++;
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const started = Date.now();
    let elapsed: number;
    try {
      await Promise.all(
        Array.from({ length: CONTRIBUTORS }, async (_, i) => {
          // Idle contributors wait for work:available (or 2 s): hundreds polling at 5 Hz would only measure the polling.
          const s = await new SimContributor(nodes[i % 2]!, { kind: 'honest' }, { max: 1 + (i % 2), idlePollMs: 2_000 }).connect();
          sims.push(s);
          void s.run().catch(() => undefined);
        }),
      );
      // New jobs keep coming while the race lasts (counted in the database, not over REST: the key's rate limit).
      while (Date.now() - started < RACE_MS) {
        if ((await one(`SELECT count(*)::int AS n FROM jobs WHERE status IN ('queued', 'running') AND NOT hidden`)) < IN_FLIGHT) await submit();
        await new Promise((r) => setTimeout(r, 200));
      }
      for (const job of jobs) expect((await waitForJob(nodes[1]!, job.id, 60_000, undefined, 500)).status).toBe('completed');
      elapsed = Date.now() - started;
    } finally {
      watching = false;
      await watcher;
      for (const s of sims) s.stop();
    }

    const total = jobs.reduce((sum, j) => sum + j.progress.total, 0);
    expect(total).toBe(jobs.length * 100);
    expect(jobs.length).toBeGreaterThan(JOBS);
    expect(looks).toBeGreaterThan(10);
    expect(doubleLeased).toBe(0);
    expect(await one(`SELECT count(*)::int AS n FROM shards WHERE state = 'verified'`)).toBe(total);
    // A lease that is not the accepted one can only have lapsed (a contributor stalled on an overloaded machine).
    expect(await one(`SELECT count(*)::int AS n FROM leases WHERE state NOT IN ('returned', 'expired')`)).toBe(0);
    // Every lease the contributors saw is one the database granted, once. (A contributor whose request timed
    // out on a loaded machine never saw the lease it was granted: at most, not exactly.)
    const granted = await one(`SELECT count(*)::int AS n FROM leases`);
    const seen = sims.flatMap((s) => s.leases.map((l) => l.leaseToken));
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.length).toBeLessThanOrEqual(granted);
    expect(seen.length).toBeGreaterThanOrEqual(total);
    // Acceptances: each shard's result taken once, credited once.
    expect(await one(`SELECT count(*)::int AS n FROM leases WHERE state = 'returned'`)).toBe(total);
    expect(await one(`SELECT count(DISTINCT shard_id)::int AS n FROM leases WHERE state = 'returned'`)).toBe(total);
    expect(await one(`SELECT coalesce(sum(verified_shards), 0)::int AS n FROM contributors`)).toBe(total);
    expect(await one(`SELECT count(*)::int AS n FROM finalize_claims`)).toBe(jobs.length);
    console.info(`lease races: ${total} shards, ${granted} leases, ${CONTRIBUTORS} contributors, ${elapsed} ms, ${looks} looks at live leases`);
  }, RACE_MS + 180_000);
});
