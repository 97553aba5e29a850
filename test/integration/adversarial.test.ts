/**
 * Issue 19's adversarial suite. Contributors written from docs/protocol.md
 * (test/support/doc-contributor.ts), each on its own network (X-Forwarded-For
 * behind TESSERA_TRUST_PROXY=loopback), work one coordinator whose trust
 * thresholds are tiny, so patient cheaters really are trusted when they start
 * to lie (the hard case):
 *  - patient cheaters earn standing honestly, then move one element per tile
 *    by +1.0 or by 10⁻³ of itself, on jobs of both verification modes;
 *  - colluders, two identities on two networks, send the same wrong tile
 *    (all 42.0, or one element +1.0) for replicated jobs;
 *  - every cheater, once banned, mints new identities on its network (Sybils);
 *  - honest contributors, summing in different orders as different GPUs do,
 *    work throughout; one re-sends some results byte for byte (lost replies).
 * Over ≥ 10,000 returned results: no wrong element in any completed result,
 * every job completes, no honest contributor is struck.
 *
 * Longer: `TESSERA_ADVERSARIAL_RESULTS=50000 TESSERA_ADVERSARIAL_SECONDS=600 npx vitest run test/integration/adversarial.test.ts`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../server/config';
import { DocContributor, type DocLease, type Outcome, type Summation } from '../support/doc-contributor';
import { authHeaders, downloadResult, getJob, makeDataDir, startTestCoordinator, type TestCoordinator } from '../support/coordinator';
import { npyBlob, randomMatrix } from '../support/matrices';

const TARGET_RESULTS = Number(process.env.TESSERA_ADVERSARIAL_RESULTS ?? 10_000);
/** Jobs are submitted until TARGET_RESULTS came back or this long has passed: about 70 s on two idle cores, more beside other test files. */
const SUBMIT_FOR_MS = Number(process.env.TESSERA_ADVERSARIAL_SECONDS ?? 300) * 1_000;
const DRAIN_MS = 45_000;
const JOBS_IN_FLIGHT = 8;
/** Verified tiles a cheater's first identity earns (and, where reported, the level 'trusted') before it lies. */
const PATIENCE = 150;
/** A Sybil's later identities lie sooner. */
const SYBIL_PATIENCE = 30;
/** Host addresses a Sybil tries in its /24 when told RATE_LIMITED. */
const SYBIL_ADDRESSES = 12;

type Mode = 'freivalds' | 'replication';
type LieKind = 'plus-one' | 'relative-1e-3' | 'collude-42' | 'collude-plus-one';
type Role = 'honest' | 'patient' | 'colluder';

interface Persona {
  name: string;
  role: Role;
  /** Its /24, as "a.b.c". */
  network: string;
  host: number;
  summation: Summation;
  lie?: (tile: Float32Array, lease: DocLease) => { tile: Float32Array; kind: LieKind };
  resendShare?: number;
  identities: DocContributor[];
  refusals: { code: string; message: string }[];
  /** Whether the current identity lies now. */
  armed: boolean;
  /** What each identity said, by `${identity}/${shardId}`. */
  lies: Map<string, LieKind>;
}

interface JobRecord {
  id: string;
  mode: Mode;
  m: number;
  k: number;
  n: number;
  seed: number;
  scale: number;
  tiles: number;
  status?: string;
  submittedAt: number;
  /** When the poll first saw it finished. */
  endedAt?: number;
}

const fnv = (s: string) => {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
};

function plusOne(tile: Float32Array, lease: DocLease) {
  tile[fnv(lease.shardId) % tile.length]! += 1;
  return { tile, kind: 'plus-one' as const };
}

/** The largest element of a row the shard id picks, moved by 10⁻³ of itself. */
function relative(tile: Float32Array, lease: DocLease) {
  const row = fnv(lease.shardId) % lease.rows;
  let at = row * lease.cols;
  for (let j = 0; j < lease.cols; j++) if (Math.abs(tile[row * lease.cols + j]!) > Math.abs(tile[at]!)) at = row * lease.cols + j;
  tile[at]! += 1e-3 * Math.abs(tile[at]!) || 1e-3;
  return { tile, kind: 'relative-1e-3' as const };
}

/** Both colluders derive the same wrong tile from the shard id alone. */
function collude(tile: Float32Array, lease: DocLease) {
  const h = fnv(lease.shardId);
  if (h % 2 === 0) return { tile: tile.fill(42), kind: 'collude-42' as const };
  tile[(h >>> 1) % tile.length]! += 1;
  return { tile, kind: 'collude-plus-one' as const };
}

/** C = A·B in float64, and Σ|a||b| per element: the scale of honest float32 rounding. */
function reference(a: Float32Array, b: Float32Array, m: number, k: number, n: number) {
  const c = new Float64Array(m * n);
  const mag = new Float64Array(m * n);
  const bAbs = Float64Array.from(b, Math.abs);
  for (let i = 0; i < m; i++) {
    const row = i * n;
    for (let l = 0; l < k; l++) {
      const x = a[i * k + l]!;
      const ax = Math.abs(x);
      const off = l * n;
      for (let j = 0; j < n; j++) {
        c[row + j]! += x * b[off + j]!;
        mag[row + j]! += ax * bAbs[off + j]!;
      }
    }
  }
  return { c, mag };
}

const isBad = (o: Outcome) => o.kind === 'error' && o.code !== 'LEASE_EXPIRED' && o.code !== 'JOB_CANCELLED';

describe('patient cheaters, colluders and Sybils against contributors written from the protocol document', () => {
  let coord: TestCoordinator;
  const personas: Persona[] = [];
  const jobs: JobRecord[] = [];
  const replicated = new Set<string>();
  /** When each cheater's first (patient) identity started lying. */
  const armedAt: { persona: string; level: string; verified: number }[] = [];
  let elapsedMs = 0;
  let stopAll = false;

  const url = () => coord.url;
  const allResults = () => personas.flatMap((p) => p.identities.flatMap((c) => c.results));

  async function standing(id: string): Promise<Record<string, unknown>> {
    const res = await fetch(`${url()}/api/v1/contributors/${id}`);
    return (await res.json()) as Record<string, unknown>;
  }
  const levelOf = (s: Record<string, unknown>) => (typeof s.trustLevel === 'string' ? s.trustLevel : 'unreported');

  function persona(name: string, role: Role, network: string, summation: Summation, extra: Partial<Persona> = {}): Persona {
    const p: Persona = { name, role, network, host: 7, summation, identities: [], refusals: [], armed: false, lies: new Map(), ...extra };
    personas.push(p);
    return p;
  }

  /** Keeps a persona working: honest ones rejoin with their token, cheaters mint a new identity after each ban. */
  async function live(p: Persona): Promise<void> {
    let token: string | undefined;
    while (!stopAll) {
      const n = p.identities.length;
      const c = new DocContributor(url(), {
        forwardedFor: `${p.network}.${p.host}`,
        lanes: 3,
        summation: p.summation,
        ...(token ? { token } : {}),
        ...(p.resendShare ? { resendShare: p.resendShare } : {}),
        ...(p.lie
          ? {
              corrupt: (tile: Float32Array, lease: DocLease) => {
                if (!p.armed || p.identities.length !== n + 1) return undefined;
                if (p.role === 'colluder' && !(replicated.has(lease.jobId) && colludersArmed())) return undefined;
                const lie = p.lie!(tile, lease);
                p.lies.set(`${n}/${lease.shardId}`, lie.kind);
                return lie.tile;
              },
            }
          : {}),
      });
      const joined = await c.join();
      if (!joined.ok) {
        p.refusals.push(joined);
        if (joined.code === 'RATE_LIMITED' && p.role !== 'honest' && p.host < 7 + SYBIL_ADDRESSES) {
          p.host++; // another address in the same /24
          continue;
        }
        return;
      }
      p.identities.push(c);
      p.armed = false;
      if ((await c.run()) === 'stopped') return;
      if (p.role === 'honest') token = c.token;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  const colludersArmed = () => personas.filter((p) => p.role === 'colluder').every((p) => p.armed);

  /** Arms each cheater's current identity once it has waited long enough (trusted, for a first identity). */
  async function armWhenReady(): Promise<void> {
    while (!stopAll) {
      for (const p of personas) {
        const c = p.identities.at(-1);
        if (p.role === 'honest' || p.armed || !c?.contributorId) continue;
        const first = p.identities.length === 1;
        if (!first) {
          p.armed = c.verified >= SYBIL_PATIENCE;
          continue;
        }
        if (c.verified < PATIENCE) continue;
        const level = levelOf(await standing(c.contributorId));
        // Where the coordinator reports no level (or never grants it), lie anyway after 3× the patience.
        if (level === 'trusted' || c.verified >= 3 * PATIENCE) {
          p.armed = true;
          armedAt.push({ persona: p.name, level, verified: c.verified });
        }
      }
      await new Promise((r) => setTimeout(r, 300));
    }
  }

  async function submit(seq: number): Promise<JobRecord> {
    const mode: Mode = seq % 2 === 0 ? 'freivalds' : 'replication';
    const m = [256, 320, 200][seq % 3]!;
    const n = [256, 192, 320][(seq >> 1) % 3]!;
    const k = [32, 64, 128, 32, 64, 256][(seq >> 2) % 6]!;
    const scale = seq % 5 === 4 ? 50 : 1;
    const job: JobRecord = { id: '', mode, m, k, n, seed: 1_000 + seq * 2, scale, tiles: Math.ceil(m / 64) * Math.ceil(n / 64), submittedAt: Date.now() };
    const { a, b } = matrices(job);
    const form = new FormData();
    form.set('type', 'matmul');
    form.set('verification', mode);
    form.set('a', npyBlob(m, k, a), 'a.npy');
    form.set('b', npyBlob(k, n, b), 'b.npy');
    const res = await fetch(`${url()}/api/v1/jobs`, { method: 'POST', body: form, headers: authHeaders(url()) });
    if (res.status !== 201) throw new Error(`submit: ${res.status} ${await res.text()}`);
    const view = (await res.json()) as { id: string; progress: { total: number } };
    job.id = view.id;
    job.tiles = view.progress.total;
    if (mode === 'replication') replicated.add(job.id);
    jobs.push(job);
    return job;
  }

  function matrices(job: JobRecord) {
    const a = randomMatrix(job.m, job.k, job.seed).map((x) => x * job.scale);
    const b = randomMatrix(job.k, job.n, job.seed + 1);
    return { a, b };
  }

  /** Keeps JOBS_IN_FLIGHT jobs running until enough results came back (or time is up), then waits for the rest. */
  async function feedJobs(): Promise<void> {
    const t0 = Date.now();
    const running = new Set<JobRecord>();
    let seq = 0;
    while (Date.now() - t0 < SUBMIT_FOR_MS + DRAIN_MS) {
      const submitting = Date.now() - t0 < SUBMIT_FOR_MS && allResults().length < TARGET_RESULTS;
      while (submitting && running.size < JOBS_IN_FLIGHT) running.add(await submit(seq++));
      if (!submitting && running.size === 0) break;
      for (const job of [...running]) {
        const view = await getJob(url(), job.id);
        if (view.status !== 'queued' && view.status !== 'running') {
          job.status = view.status;
          job.endedAt = Date.now();
          running.delete(job);
        }
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    elapsedMs = Date.now() - t0;
  }

  beforeAll(async () => {
    const dir = await makeDataDir();
    const env = {
      TESSERA_DATA_DIR: dir,
      PORT: '0',
      HOST: '127.0.0.1',
      TESSERA_TRUST_PROXY: 'loopback',
      // 64×64 tiles (the smallest edge the tiler cuts) for every job here.
      TESSERA_TARGET_TILES: '64',
      TESSERA_TRUSTED_AFTER_GFLOP: '0.01',
      TESSERA_TRUSTED_AFTER_JOBS: '2',
      TESSERA_TRUSTED_AFTER_HOURS: '0',
      TESSERA_TRUSTED_AFTER_CANARIES: '2',
      TESSERA_KEY_MAX_JOBS: '64',
      TESSERA_KEY_REQUESTS_PER_MINUTE: '1000000',
    };
    coord = await startTestCoordinator({ ...loadConfig(env), tilesFollowKernels: false }, dir);

    persona('honest-1', 'honest', '10.1.0', 'forward');
    persona('honest-2', 'honest', '10.2.0', 'reverse');
    persona('honest-3', 'honest', '10.3.0', 'four-way', { resendShare: 0.05 });
    persona('honest-4', 'honest', '10.4.0', 'forward');
    persona('patient-plus-one', 'patient', '10.20.0', 'forward', { lie: plusOne });
    persona('patient-relative', 'patient', '10.21.0', 'reverse', { lie: relative });
    persona('colluder-a', 'colluder', '10.30.0', 'forward', { lie: collude });
    persona('colluder-b', 'colluder', '10.31.0', 'forward', { lie: collude });

    const working = personas.map((p) => live(p));
    const arming = armWhenReady();
    await feedJobs();
    stopAll = true;
    for (const p of personas) for (const c of p.identities) c.stop();
    await Promise.all([...working, arming]);
    printReport();
  }, SUBMIT_FOR_MS + DRAIN_MS + 60_000);

  afterAll(async () => {
    stopAll = true;
    for (const p of personas) for (const c of p.identities) c.stop();
    await coord?.dispose();
  });

  /** Every lie told, with the reply it got. */
  function lies() {
    return personas.flatMap((p) =>
      p.identities.flatMap((c, n) => c.results.filter((r) => r.corrupted).map((r) => ({ persona: p.name, identity: n, kind: p.lies.get(`${n}/${r.shardId}`), result: r }))),
    );
  }

  function printReport(): void {
    const results = allResults();
    const byJob = new Map(jobs.map((j) => [j.id, j]));
    const lines = [`adversarial: ${results.length} results returned in ${(elapsedMs / 1000).toFixed(1)} s over ${jobs.length} jobs`];
    for (const mode of ['freivalds', 'replication'] as const) {
      const modeJobs = jobs.filter((j) => j.mode === mode);
      const rs = results.filter((r) => byJob.get(r.jobId)?.mode === mode);
      const shards = modeJobs.reduce((s, j) => s + j.tiles, 0);
      const jobFlops = modeJobs.reduce((s, j) => s + 2 * j.m * j.n * j.k, 0);
      const resultFlops = rs.reduce((s, r) => s + 2 * r.rows * r.cols * r.k, 0);
      const took = modeJobs.filter((j) => j.endedAt).map((j) => (j.endedAt! - j.submittedAt) / 1000).sort((x, y) => x - y);
      lines.push(
        `  ${mode}: ${modeJobs.length} jobs, ${shards} shards, ${rs.length} results (${(rs.length / shards).toFixed(2)} per shard), ` +
          `contributor compute ${(resultFlops / jobFlops).toFixed(2)}× the product (${((resultFlops / jobFlops - 1) * 100).toFixed(0)}% extra); ` +
          `submit to completion median ${took[took.length >> 1]?.toFixed(1)} s, max ${took.at(-1)?.toFixed(1)} s`,
      );
    }
    const elsewhere = results.filter((r) => !byJob.has(r.jobId)).length;
    lines.push(`  results on job ids the requester never saw (canaries with their own ids): ${elsewhere}`);
    const told = lies();
    for (const kind of ['plus-one', 'relative-1e-3', 'collude-42', 'collude-plus-one'] as const) {
      for (const mode of ['freivalds', 'replication', 'canary'] as const) {
        const these = told.filter((l) => l.kind === kind && (byJob.get(l.result.jobId)?.mode ?? 'canary') === mode);
        if (these.length === 0) continue;
        const count = (f: (o: Outcome) => boolean) => these.filter((l) => f(l.result.outcome)).length;
        const rejected = count((o) => o.kind === 'error' && o.code === 'VERIFICATION_FAILED');
        const patient = these.filter((l) => l.identity === 0).length;
        lines.push(
          `  lie ${kind} on ${mode}: ${these.length} sent (${patient} by patient first identities, ${these.length - patient} by Sybils), ${rejected} rejected (catch rate ${((rejected / these.length) * 100).toFixed(1)}%), ` +
            `${count((o) => o.kind === 'pending')} pending, ${count((o) => o.kind === 'verified')} verified, ${count((o) => o.kind === 'error' && o.code !== 'VERIFICATION_FAILED')} other`,
        );
      }
    }
    for (const p of personas) {
      const codes = p.refusals.map((r) => r.code).join(',') || '-';
      lines.push(`  ${p.name}: ${p.identities.length} identities, ${p.identities.reduce((s, c) => s + c.results.length, 0)} results, throttled ${p.identities.reduce((s, c) => s + c.throttled, 0)}, refused hellos: ${codes}`);
    }
    for (const a of armedAt) lines.push(`  ${a.persona} started lying at ${a.verified} verified tiles, level ${a.level}`);
    console.log(lines.join('\n'));
  }

  it('returns at least the target number of results, and the cheaters really lied', () => {
    expect(allResults().length).toBeGreaterThanOrEqual(TARGET_RESULTS);
    const told = lies();
    for (const kind of ['plus-one', 'relative-1e-3', 'collude-42', 'collude-plus-one'] as const) {
      expect(told.filter((l) => l.kind === kind).length, `${kind} tiles sent`).toBeGreaterThan(0);
    }
    expect(armedAt.length, 'patient identities that started lying').toBe(4);
    // The hard case: a patient cheater is trusted when it starts to lie.
    for (const a of armedAt) expect(a.level, `${a.persona}: level when it started lying`).toBe('trusted');
  });

  it('assembles no wrong element into any completed result', async () => {
    // The smallest lie told on each job, else on jobs of its scale: no element may be off by that much.
    const scaleOf = new Map(jobs.map((j) => [j.id, j.scale]));
    const smallest = new Map<string | number, number>();
    for (const l of lies()) {
      for (const key of [l.result.jobId, scaleOf.get(l.result.jobId) ?? 0]) smallest.set(key, Math.min(smallest.get(key) ?? Infinity, l.result.injected));
    }
    let wrong = 0;
    let worstOverLie = 0;
    const wrongJobs: string[] = [];
    const completed = jobs.filter((j) => j.status === 'completed');
    for (const job of completed) {
      const { a, b } = matrices(job);
      const ref = reference(a, b, job.m, job.k, job.n);
      const got = (await downloadResult(url(), job.id)).data;
      // Honest float32 rounding grows like √k·2⁻²⁴·Σ|a||b|; 16× that is far above it and far below any lie told here.
      const slack = 16 * Math.sqrt(job.k) * 2 ** -24;
      const lie = smallest.get(job.id) ?? smallest.get(job.scale) ?? Infinity;
      let bad = 0;
      for (let i = 0; i < got.length; i++) {
        const err = Math.abs(got[i]! - ref.c[i]!);
        if (!(err <= slack * ref.mag[i]! + 1e-30)) bad++;
        if (lie < Infinity) worstOverLie = Math.max(worstOverLie, Number.isNaN(err) ? Infinity : err / lie);
      }
      if (bad > 0) wrongJobs.push(`${job.id} (${job.mode}, ${job.m}×${job.k}×${job.n}): ${bad} wrong`);
      wrong += bad;
    }
    console.log(`checked ${completed.length} completed results: ${wrong} wrong elements; worst |result − reference| / smallest lie on that job (or scale) ${worstOverLie.toExponential(2)}`);
    expect(completed.length).toBeGreaterThan(0);
    expect(wrong, wrongJobs.slice(0, 8).join('; ')).toBe(0);
    expect(worstOverLie, 'largest |result − reference| over the smallest lie').toBeLessThan(1);
  }, 60_000 + SUBMIT_FOR_MS / 2);

  it('completes every job while honest contributors are present', () => {
    const unfinished = jobs.filter((j) => j.status !== 'completed').map((j) => `${j.id} ${j.mode} ${j.status ?? 'still running'}`);
    expect(unfinished.length, unfinished.slice(0, 8).join('; ')).toBe(0);
  });

  it('strikes no honest contributor, and answers a byte-identical re-send as it answered the first', async () => {
    let resends = 0;
    const differing: string[] = [];
    for (const p of personas.filter((x) => x.role === 'honest')) {
      for (const c of p.identities) {
        const bad = c.results.filter((r) => isBad(r.outcome) || (r.resent && isBad(r.resent.outcome)));
        expect(bad.map((r) => JSON.stringify([r.outcome, r.resent?.outcome])), `${p.name}: replies that strike`).toEqual([]);
        expect(c.unexpected, `${p.name}: replies the protocol document does not describe`).toEqual([]);
        for (const r of c.results.filter((x) => x.resent)) {
          resends++;
          if (JSON.stringify(r.resent!.outcome) !== JSON.stringify(r.outcome)) differing.push(`${JSON.stringify(r.outcome)} then ${JSON.stringify(r.resent!.outcome)}`);
        }
        const s = await standing(c.contributorId);
        expect(s.status, `${p.name}: status`).toBe('active');
        expect(s.strikes, `${p.name}: strikes in its public standing`).toBe(0);
      }
      expect(p.identities.length, `${p.name}: identities (it keeps its token)`).toBe(1);
    }
    console.log(`honest re-sends: ${resends}, answered differently: ${differing.length} ${differing.slice(0, 3).join('; ')}`);
    expect(resends).toBeGreaterThan(0);
    expect(differing.length, differing.slice(0, 5).join('; ')).toBe(0);
  });

  it('bans every cheater that lied, and lets no lie through as verified', async () => {
    for (const p of personas.filter((x) => x.role !== 'honest')) {
      const standings = await Promise.all(p.identities.map((c) => standing(c.contributorId)));
      const banned = standings.filter((s) => s.status === 'banned').length;
      const lied = p.identities.filter((c) => c.results.some((r) => r.corrupted)).length;
      expect(banned, `${p.name}: identities banned of ${lied} that lied`).toBeGreaterThanOrEqual(lied > 0 ? 1 : 0);
      expect(p.identities.length, `${p.name}: identities minted (re-registration after a ban)`).toBeGreaterThan(1);
      // Minted from a network with a ban: they start at the bottom.
      const later = standings.slice(1);
      expect(later.filter((s) => s.probation !== true).length, `${p.name}: later identities not on probation`).toBe(0);
    }
    // A rejection says only the category: the same words for every failed check, real tile or canary.
    const messages = new Set(lies().flatMap((l) => (l.result.outcome.kind === 'error' && l.result.outcome.code === 'VERIFICATION_FAILED' ? [l.result.outcome.message] : [])));
    expect([...messages]).toEqual(['result rejected: it failed verification']);
    // Canaries carry the id of the real job the contributor works on: no lease names a job the requester never saw.
    const known = new Set(jobs.map((j) => j.id));
    expect(allResults().filter((r) => !known.has(r.jobId)).length, 'results on job ids no requester submitted').toBe(0);
    const passed = lies().filter((l) => l.result.outcome.kind === 'verified');
    expect(passed.length, `lies answered "verified": ${passed.slice(0, 5).map((l) => `${l.persona} ${l.kind}`).join(', ')}`).toBe(0);
  });
});
