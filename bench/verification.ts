/**
 * Verification benchmark: `npm run bench:verify [-- --runs 3]`.
 * 1. What checking costs, as a fraction of the work checked: Freivalds' test
 *    on the coordinator versus full replication (a second contributor
 *    recomputes the tile, and the coordinator compares the two).
 * 2. Adversarial runs: honest and cheating simulated contributors over many
 *    jobs; counts wrong results assembled (false accepts) and honest
 *    contributors banned (false bans).
 * Writes bench-results/verification.json.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { freivaldsCheck } from '../shared/freivalds';
import { matmulReference, maxToleranceRatio } from '../shared/matmul-reference';
import { resultsAgree } from '../shared/result-compare';
import { downloadResult, startTestCoordinator, submitMatmul, waitForJob } from '../test/support/coordinator';
import { randomMatrix } from '../test/support/matrices';
import { SimContributor, type Behaviour } from '../test/support/sim-contributor';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' } } });

function medianMs(fn: () => void, reps: number): number {
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  return times.sort((x, y) => x - y)[Math.floor(times.length / 2)]!;
}

function costs() {
  const rows = [];
  for (const [t, k] of [
    [64, 64],
    [256, 1024],
    [512, 1024],
    [512, 4096],
  ] as const) {
    const a = randomMatrix(t, k, 1);
    const b = randomMatrix(k, t, 2);
    const c = matmulReference(a, b, t, k, t);
    const tileFlops = 2 * t * t * k;
    const rounds = 3;
    // B·r and |B|·|r|, A·(B·r) and |A|·(|B|·|r|), C·r: multiply-adds counted as 2 FLOPs.
    const freivaldsFlops = rounds * (4 * k * t + 4 * t * k + 2 * t * t);
    const freivaldsMs = medianMs(() => freivaldsCheck(a, b, c, t, k, t), 5);
    const recomputeMs = medianMs(() => matmulReference(a, b, t, k, t), t * t * k > 2e8 ? 1 : 3);
    const compareMs = medianMs(() => resultsAgree(c, c, k), 5);
    rows.push({
      tile: `${t}×${t}×${k}`,
      freivaldsFlopsFraction: freivaldsFlops / tileFlops,
      freivaldsMs,
      cpuTileMs: recomputeMs,
      freivaldsTimeFraction: freivaldsMs / recomputeMs,
      replicationComputeFraction: 1, // one more contributor computes the whole tile again
      replicationCompareMs: compareMs,
    });
  }
  return rows;
}

const CHEATERS: [string, Behaviour, number?][] = [
  ['noise', { kind: 'noise', scale: 1 }],
  ['flip-one', { kind: 'flip-one' }],
  ['other-shard', { kind: 'other-shard' }, 2],
  ['replay', { kind: 'replay' }],
  ['scale 1+1e-3', { kind: 'scale', factor: 1 + 1e-3 }],
];

async function adversarialRun(seed: number) {
  const coord = await startTestCoordinator({ targetTiles: 9 });
  const sims: SimContributor[] = [];
  const spawn = async (b: Behaviour, max?: number) => {
    const s = await new SimContributor(coord.url, b, max ? { max } : {}).connect();
    sims.push(s);
    void s.run().catch(() => undefined);
    return s;
  };
  try {
    const honest = await Promise.all(Array.from({ length: 6 }, () => spawn({ kind: 'honest', delayMs: 10 })));
    const cheaters = await Promise.all(CHEATERS.map(([, b, max]) => spawn(b, max)));
    let jobs = 0;
    let falseAccepts = 0;
    let tiles = 0;
    for (let round = 0; round < 24; round++) {
      const a = randomMatrix(192, 64, seed * 100 + round);
      const b = randomMatrix(64, 192, seed * 100 + round + 1);
      const job = await submitMatmul(coord.url, { rows: 192, cols: 64, data: a }, { rows: 64, cols: 192, data: b });
      const done = await waitForJob(coord.url, job.id, 120_000);
      if (done.status !== 'completed') throw new Error(`job ${job.id} ended ${done.status}`);
      jobs++;
      tiles += done.progress.total;
      const got = await downloadResult(coord.url, job.id);
      if (maxToleranceRatio(got.data, matmulReference(a, b, 192, 64, 192), 1e-4, 1e-4) > 1) falseAccepts++;
      const banned = await Promise.all(cheaters.map(async (c) => (await coord.store.getContributor(c.contributorId))!.trust.status === 'banned'));
      if (round >= 5 && banned.every(Boolean)) break;
    }
    const cheatersBanned = (await Promise.all(cheaters.map(async (c) => (await coord.store.getContributor(c.contributorId))!.trust.status))).filter((s) => s === 'banned').length;
    const falseBans = (await Promise.all(honest.map(async (h) => (await coord.store.getContributor(h.contributorId))!.trust.status))).filter((s) => s === 'banned').length;
    return { jobs, tiles, falseAccepts, cheaters: cheaters.length, cheatersBanned, honest: honest.length, falseBans };
  } finally {
    for (const s of sims) s.disconnect();
    await coord.dispose();
  }
}

async function main(): Promise<void> {
  const cost = costs();
  console.log('tile          | Freivalds FLOPs / tile FLOPs | Freivalds ms | CPU tile ms | time ratio | replication: extra compute');
  for (const r of cost) {
    console.log(
      `${r.tile.padEnd(13)} | ${(r.freivaldsFlopsFraction * 100).toFixed(2).padStart(27)}% | ${r.freivaldsMs.toFixed(2).padStart(12)} | ${r.cpuTileMs.toFixed(1).padStart(11)} | ${(r.freivaldsTimeFraction * 100).toFixed(2).padStart(9)}% | 100% + ${r.replicationCompareMs.toFixed(2)} ms compare`,
    );
  }
  const runs = [];
  for (let i = 0; i < Number(values.runs); i++) {
    const r = await adversarialRun(i + 1);
    runs.push(r);
    console.log(`adversarial run ${i + 1}: ${r.jobs} jobs, ${r.tiles} tiles, false accepts ${r.falseAccepts}, cheaters banned ${r.cheatersBanned}/${r.cheaters}, false bans ${r.falseBans}/${r.honest}`);
  }
  await mkdir('bench-results', { recursive: true });
  await writeFile('bench-results/verification.json', JSON.stringify({ date: new Date().toISOString(), cost, runs }, null, 2));
  console.log('wrote bench-results/verification.json');
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
