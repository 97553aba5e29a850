import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Leaderboard } from '../../shared/api';
import type { ProfileMessage, ProfileReply } from '../../shared/protocol';
import { startTestCoordinator, submitMatmul, waitForJob, type TestCoordinator } from '../support/coordinator';
import { randomMatrix } from '../support/matrices';
import { SimContributor } from '../support/sim-contributor';

// Issue 18 item 10: names an attacker used to hide, to rank as nobody, or to pass for the operators.
const NAME_ATTACKS: [string, RegExp][] = [
  ['\u3164', /invisible character \(U\+1160\)/], // Hangul filler: NFKC turns it into U+1160, still invisible
  ['\u3164\u3164\u3164', /invisible character/],
  ['\uffa0\uffa0', /invisible character/], // half-width Hangul filler
  ['\u115f\u1160', /invisible character \(U\+115F\)/], // Hangul choseong and jungseong fillers
  ['김\u3164', /invisible character/],
  ['anonymous-ad449d', /may not start with "anonymous"/],
  ['ANONYMOUS-AD449D', /may not start with "anonymous"/],
  ['an0nym0us ad449d', /may not start with "anonymous"/],
  ['Tessera Admin', /may not contain "Tessera"/],
  ['Tessera Support', /may not contain "Tessera"/],
  ['TESSERA', /may not contain "Tessera"/],
  ['T e s s e r a', /may not contain "Tessera"/],
  ['\u0422essera', /mixes scripts \(Cyrillic, Latin\)/], // Cyrillic Te
  ['Official Bob', /may not use the word "Official"/],
  ['bob_support', /may not use the word "support"/],
  ['e' + '\u0301'.repeat(30), /too many marks on "e"/],
];
const TEAM_ATTACKS: [string, RegExp][] = [
  ['Tessera Staff', /^team may not contain "Tessera"/],
  ['\u3164\u3164', /^team contains an invisible character/],
  ['Support Crew', /^team may not use the word "Support"/],
];

let coord: TestCoordinator;
const sims: SimContributor[] = [];

async function contributor(): Promise<SimContributor> {
  // A little work time each, so the job's 16 tiles are shared out among all of them.
  const s = await new SimContributor(coord.url, { kind: 'honest', delayMs: 30 }).connect();
  sims.push(s);
  return s;
}

function profile(s: SimContributor, change: ProfileMessage): Promise<ProfileReply> {
  return s.socket.timeout(5_000).emitWithAck('profile', change);
}

async function expectRefused(s: SimContributor, change: ProfileMessage, why: RegExp): Promise<void> {
  const reply = await profile(s, change);
  expect(reply.ok, JSON.stringify(change)).toBe(false);
  if (!reply.ok) {
    expect(reply.error.code).toBe('BAD_NAME');
    expect(reply.error.message, JSON.stringify(change)).toMatch(why);
    expect(reply.error.message, JSON.stringify(change)).toMatch(/remove|choose another|use /); // says what to change
  }
}

async function storedProfile(s: SimContributor): Promise<{ name: string | null; team: string | null }> {
  const res = await fetch(`${coord.url}/api/v1/contributors/${s.contributorId}`);
  expect(res.status).toBe(200);
  return (await res.json()) as { name: string | null; team: string | null };
}

const anonymousForm = (s: SimContributor) => `anonymous-${s.contributorId.slice(0, 6)}`;

beforeAll(async () => {
  coord = await startTestCoordinator({ targetTiles: 16, canaries: false });
}, 30_000);

afterAll(async () => {
  for (const s of sims) s.disconnect();
  await coord?.dispose();
});

describe('hostile names and team names', () => {
  it('refuses every attack with BAD_NAME, keeps names and anonymous forms to their owners, and shows none of them on the leaderboard', async () => {
    const victim = await contributor();
    const unnamed = await contributor(); // never names itself: its anonymous form is what others would copy
    const attacker = await contributor();
    const legacy = await contributor(); // holds a name stored before these rules existed
    expect(await profile(victim, { name: 'Copa', team: 'Compilers' })).toEqual({ ok: true, name: 'Copa', team: 'Compilers' });

    for (const [name, why] of NAME_ATTACKS) await expectRefused(attacker, { name }, why);
    for (const [team, why] of TEAM_ATTACKS) await expectRefused(attacker, { team }, why);
    // Another contributor's name, in any spelling or look-alike, and the form the board shows for another's id.
    for (const name of ['Copa', 'copa', 'C O P A', 'c.o.p.a', '\u0421\u043e\u0440\u0430' /* all Cyrillic */]) await expectRefused(attacker, { name }, /is taken by another contributor, or looks like one that is; choose another/);
    for (const other of [unnamed, victim, legacy]) {
      await expectRefused(attacker, { name: anonymousForm(other) }, /may not start with "anonymous"/);
      await expectRefused(attacker, { name: anonymousForm(other).toUpperCase().replace('-', ' ') }, /may not start with "anonymous"/);
    }
    expect(await storedProfile(attacker)).toMatchObject({ name: null, team: null });
    expect(await storedProfile(victim)).toMatchObject({ name: 'Copa', team: 'Compilers' });

    // A row written before these rules (straight into the store, as an old coordinator did) is not shown as itself either.
    const old = await coord.store.setProfile(legacy.contributorId, { name: { display: '\u3164\u3164', skeleton: 'legacy-filler' }, team: { display: 'Tessera Staff', skeleton: 'tesserastaff' } }, Date.now());
    expect(old.ok).toBe(true);

    // Everyone earns credits, so every one of them is ranked.
    for (const s of sims) void s.run().catch(() => undefined);
    const job = await submitMatmul(coord.url, { rows: 256, cols: 64, data: randomMatrix(256, 64, 1) }, { rows: 64, cols: 256, data: randomMatrix(64, 256, 2) });
    expect((await waitForJob(coord.url, job.id, 30_000)).status).toBe('completed');
    const earners = [];
    for (const s of sims) if ((await coord.store.getContributor(s.contributorId))!.credits > 0) earners.push(s);
    expect(earners).toHaveLength(sims.length);

    let board: Leaderboard | undefined;
    for (let i = 0; i < 60 && board?.contributors.all.length !== earners.length; i++) {
      if (board) await new Promise((r) => setTimeout(r, 250));
      const res = await fetch(`${coord.url}/api/v1/leaderboard`);
      expect(res.status).toBe(200);
      board = (await res.json()) as Leaderboard;
    }
    const shownAs = new Map<SimContributor, string>([
      [victim, 'Copa'],
      [unnamed, anonymousForm(unnamed)],
      [attacker, anonymousForm(attacker)],
      [legacy, anonymousForm(legacy)],
    ]);
    const attackNames = new Set([...NAME_ATTACKS, ...TEAM_ATTACKS].map(([n]) => n.normalize('NFKC')));
    for (const period of ['day', 'week', 'all'] as const) {
      const rows = board!.contributors[period];
      expect(new Set(rows.map((r) => r.name)), period).toEqual(new Set(earners.map((s) => shownAs.get(s))));
      for (const r of rows) {
        expect(r.name).not.toMatch(/[\p{Default_Ignorable_Code_Point}\p{Cf}]/u);
        expect(attackNames.has(r.name)).toBe(false);
        expect(r.team === null || r.team === 'Compilers', `${r.name} shown in team ${r.team}`).toBe(true);
      }
      expect(board!.teams[period].map((t) => t.name), period).toEqual(['Compilers']); // the legacy "Tessera Staff" earned too, and is left off
    }
  }, 60_000);
});
