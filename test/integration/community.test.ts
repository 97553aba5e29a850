import { describe, expect, it } from 'vitest';
import type { Leaderboard } from '../../shared/api';
import { submitMatmul, waitForJob } from '../support/coordinator';
import { randomMatrix } from '../support/matrices';
import { SimContributor } from '../support/sim-contributor';
import { useCoordinatorHarness } from '../support/harness';

const h = useCoordinatorHarness();

async function named(name: string | null, team: string | null, delayMs: number) {
  const s = await new SimContributor(h.coord.url, { kind: 'honest', delayMs }).connect();
  h.track(s);
  const reply = await s.socket.timeout(5_000).emitWithAck('profile', { name, team });
  return { s, reply };
}

describe('names, teams and leaderboards', () => {
  it('credits verified FLOPs, ranks contributors and teams, and refuses hostile or look-alike names', async () => {
    await h.start({ targetTiles: 16, canaries: false });
    const fast = await named('Ada Lovelace', 'Analytical Engines', 5);
    const slow = await named('Grace', 'analytical_engines', 60); // same team, written differently
    expect(fast.reply).toEqual({ ok: true, name: 'Ada Lovelace', team: 'Analytical Engines' });
    expect(slow.reply).toEqual({ ok: true, name: 'Grace', team: 'Analytical Engines' });

    const probe = await new SimContributor(h.coord.url).connect();
    h.track(probe);
    for (const [name, why] of [
      ['<img src=x onerror=alert(1)>', /letters, digits/],
      ['<script>alert(1)</script>', /letters, digits/],
      ['Ada_Lovelace', /taken/], // same skeleton as an existing name
      ['Tessera', /reserved/],
      ['Gr\u0430ce', /mixes scripts/], // Cyrillic a inside Latin
    ] as const) {
      const r = await probe.socket.timeout(5_000).emitWithAck('profile', { name });
      expect(r.ok, name).toBe(false);
      if (!r.ok) {
        expect(r.error.code).toBe('BAD_NAME');
        expect(r.error.message).toMatch(why);
      }
    }

    void fast.s.run().catch(() => undefined);
    void slow.s.run().catch(() => undefined);
    const job = await submitMatmul(h.coord.url, { rows: 256, cols: 64, data: randomMatrix(256, 64, 1) }, { rows: 64, cols: 256, data: randomMatrix(64, 256, 2) });
    expect((await waitForJob(h.coord.url, job.id)).status).toBe('completed');

    const a = (await h.coord.store.getContributor(fast.s.contributorId))!;
    const g = (await h.coord.store.getContributor(slow.s.contributorId))!;
    const tileFlops = 2 * 64 * 64 * 64;
    expect(a.flops).toBe(a.verifiedShards * tileFlops);
    expect(a.credits).toBeCloseTo(a.flops / 1e9, 9);
    expect(g.credits).toBeCloseTo(g.flops / 1e9, 9);
    expect(a.verifiedShards + g.verifiedShards).toBe(job.progress.total);
    expect(a.verifiedShards).toBeGreaterThan(g.verifiedShards);

    let board: Leaderboard | undefined;
    for (let i = 0; i < 40; i++) {
      const snap = (await (await fetch(`${h.coord.url}/api/v1/network`)).json()) as { leaderboard: Leaderboard };
      board = snap.leaderboard;
      if (board.contributors.all.length === 2) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    for (const period of ['day', 'week', 'all'] as const) {
      expect(board!.contributors[period].map((r) => r.name)).toEqual(['Ada Lovelace', 'Grace']);
      expect(board!.teams[period]).toEqual([{ rank: 1, name: 'Analytical Engines', members: 2, credits: expect.closeTo(a.credits + g.credits, 9) }]);
    }
    const lb = await fetch(`${h.coord.url}/api/v1/leaderboard`);
    expect(lb.headers.get('cache-control')).toMatch(/max-age/);
    const mine = (await (await fetch(`${h.coord.url}/api/v1/contributors/${fast.s.contributorId}`)).json()) as { name: string; team: string };
    expect(mine).toMatchObject({ name: 'Ada Lovelace', team: 'Analytical Engines' });
    const me = await fetch(`${h.coord.url}/api/v1/contributors/me`, { headers: { authorization: `Bearer ${fast.s.token}` } });
    expect(((await me.json()) as { id: string }).id).toBe(fast.s.contributorId);
    expect((await fetch(`${h.coord.url}/api/v1/contributors/me`, { headers: { authorization: 'Bearer not-a-real-token-at-all' } })).status).toBe(401);
  });
});
