/**
 * `npm run bench:honest-error [-- --quick] [-- --no-dawn] [-- --no-chromium]`; without a GPU, Dawn runs on
 * SwiftShader: `LD_LIBRARY_PATH=/usr/lib/chromium VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json npm run bench:honest-error`
 * Measures what Freivalds' tolerance rests on (docs/verification.md):
 * 1. Honest error: float32 products in many summation orders (sequential,
 *    reversed, split-K blocks, interleaved lanes, pairwise, with and without
 *    FMA) over six data classes and tiles up to 256×256 with k = 4096 (a
 *    sample of rows: rows are checked independently), against float64.
 *    Prints κ = ‖e_i‖/(√k·u·M_i), the per-element ratio, and the honest
 *    residual ratio |C·r − A·B·r|/τ_i over many random r; runs the real check.
 * 2. Catch rate: one element changed by 10⁻⁴·M_i, by 10⁻³ of itself, and by
 *    +1.0, per tile size and data class: escapes with the chosen rounds, and
 *    the pass rate of a single round against its bound.
 * 3. The WGSL kernels in Dawn (the `webgpu` package, SwiftShader's Vulkan when
 *    Chromium is installed): every configuration, honest error and verdict.
 * 4. The same kernels in headless Chromium through the /bench page: each
 *    one's per-element error against the worst-case bound.
 * Writes bench-results/honest-error.json.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { escapeProbability, freivaldsCheck, freivaldsRounds, HONEST_Z, MODEL_Z, ROUNDING_KAPPA, roundPassProbability, rowMagnitudes } from '../shared/freivalds';
import { replicaTolerance, resultsAgree } from '../shared/result-compare';
import { classMatrices, DATA_CLASSES, mulberry32, productRows, SUMMATION_ORDERS, type DataClass } from '../test/support/float32-orders';
import { printChromium, runChromiumKernels } from './honest-error-chromium';
import { runDawnKernels } from './honest-error-dawn';
import { honestStats, type HonestStats, type Tile } from './honest-error-stats';

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false }, 'no-dawn': { type: 'boolean', default: false }, 'no-chromium': { type: 'boolean', default: false } } });
const quick = values.quick;

const TILES: Tile[] = [
  { rows: 64, k: 256, cols: 64, sample: 16 },
  { rows: 64, k: 1024, cols: 64, sample: 8 },
  { rows: 128, k: 4096, cols: 128, sample: 4 },
  { rows: 256, k: 4096, cols: 256, sample: 2 },
];
const tileText = (t: Pick<Tile, 'rows' | 'k' | 'cols'>) => `${t.rows}×${t.k}×${t.cols}`;

interface HonestRow extends HonestStats {
  tile: string;
  data: DataClass;
  order: string;
}

function measureHonest(): HonestRow[] {
  const out: HonestRow[] = [];
  for (const t of quick ? TILES.slice(0, 2) : TILES) {
    for (const data of DATA_CLASSES) {
      const { a, b } = classMatrices(data, t.sample, t.k, t.cols, 1000 + t.k + t.cols);
      for (const order of SUMMATION_ORDERS) {
        const c = productRows(order, a, b, [...Array(t.sample).keys()], t.k, t.cols);
        out.push({ tile: tileText(t), data, order: order.id, ...honestStats(a, b, c, t.sample, t.k, t.cols, quick ? 200 : 2000, 7) });
      }
    }
    console.error(`honest error: ${tileText(t)} done`);
  }
  return out;
}

type Change = 'δ=1e-4·M_i' | '1e-3 relative' | '+1.0';
const CHANGES: Change[] = ['δ=1e-4·M_i', '1e-3 relative', '+1.0'];

interface CatchRow {
  tile: string;
  data: DataClass;
  change: Change;
  rounds: number;
  trials: number;
  escapes: number;
  /** single round: measured pass rate and its bound (the bound is for δ = 10⁻⁴·M_i) */
  oneRoundTrials: number;
  oneRoundPassRate: number;
  oneRoundBound: number;
  guaranteedEscape: number;
}

function measureCatch(): CatchRow[] {
  const out: CatchRow[] = [];
  const trials: Record<number, [number, number]> = { 256: [2000, 2000], 1024: [400, 1000], 4096: [60, 300] };
  for (const t of quick ? TILES.slice(0, 2) : TILES) {
    const [full, one] = trials[t.k]!.map((n) => (quick ? Math.ceil(n / 10) : n)) as [number, number];
    for (const data of ['uniform', 'positive', 'heavy-tailed', 'constant'] as DataClass[]) {
      const { a, b } = classMatrices(data, t.sample, t.k, t.cols, 2000 + t.k);
      const c = productRows(SUMMATION_ORDERS[0]!, a, b, [...Array(t.sample).keys()], t.k, t.cols);
      const { magnitude } = rowMagnitudes(a, b, t.sample, t.k, t.cols);
      const rand = mulberry32(t.k * 31 + t.cols);
      let at = 0;
      const tamper = (change: Change): Float32Array => {
        const bad = c.slice();
        at = Math.floor(rand() * bad.length);
        const sign = rand() < 0.5 ? -1 : 1;
        const row = Math.floor(at / t.cols);
        const delta = change === '+1.0' ? 1 : change === '1e-3 relative' ? 1e-3 * Math.abs(c[at]!) : 1e-4 * magnitude[row]!;
        bad[at] = Math.fround(c[at]! + (change === '+1.0' ? 1 : sign * delta));
        return bad;
      };
      for (const change of CHANGES) {
        // Escaped: the tile passed and the changed row was not one the check replaced by its exact values.
        const escaped = (bad: Float32Array, rounds?: number) => {
          const r = freivaldsCheck(a, b, bad, t.sample, t.k, t.cols, rounds === undefined ? {} : { rounds });
          return r.ok && !r.exactRows?.some((x) => x.row === Math.floor(at / t.cols));
        };
        let escapes = 0;
        for (let n = 0; n < full; n++) if (escaped(tamper(change))) escapes++;
        let passes = 0;
        for (let n = 0; n < one; n++) if (escaped(tamper(change), 1)) passes++;
        out.push({
          tile: tileText(t),
          data,
          change,
          rounds: freivaldsRounds(t.k),
          trials: full,
          escapes,
          oneRoundTrials: one,
          oneRoundPassRate: passes / one,
          oneRoundBound: roundPassProbability(t.k),
          guaranteedEscape: escapeProbability(t.k),
        });
      }
    }
    console.error(`catch rate: ${tileText(t)} done`);
  }
  return out;
}

interface ReplicaRow {
  tile: string;
  data: DataClass;
  pairs: number;
  disagreeing: number;
  /** largest |x − y| / (τ·(max(|x|,|y|) + rms(row))) over every pair of orders */
  worstRatio: number;
}

/** Every pair of honest summation orders through resultsAgree, and how close the worst came to its tolerance. */
function measureReplicas(): ReplicaRow[] {
  const out: ReplicaRow[] = [];
  for (const t of quick ? TILES.slice(0, 2) : TILES) {
    const tau = replicaTolerance(t.k);
    for (const data of DATA_CLASSES) {
      const { a, b } = classMatrices(data, t.sample, t.k, t.cols, 4000 + t.k);
      const results = SUMMATION_ORDERS.map((o) => productRows(o, a, b, [...Array(t.sample).keys()], t.k, t.cols));
      let pairs = 0;
      let disagreeing = 0;
      let worstRatio = 0;
      for (let x = 0; x < results.length; x++)
        for (let y = x + 1; y < results.length; y++) {
          const [p, q] = [results[x]!, results[y]!];
          pairs++;
          if (!resultsAgree(p, q, t.k, t.cols)) disagreeing++;
          for (let i = 0; i < t.sample; i++) {
            let sq = 0;
            for (let j = i * t.cols; j < (i + 1) * t.cols; j++) sq += (p[j]! ** 2 + q[j]! ** 2) / 2;
            const rms = Math.sqrt(sq / t.cols);
            for (let j = i * t.cols; j < (i + 1) * t.cols; j++) worstRatio = Math.max(worstRatio, Math.abs(p[j]! - q[j]!) / (tau * (Math.max(Math.abs(p[j]!), Math.abs(q[j]!)) + rms)));
          }
        }
      out.push({ tile: tileText(t), data, pairs, disagreeing, worstRatio });
    }
  }
  return out;
}

function printReplicas(rows: ReplicaRow[]): void {
  console.log('\nReplica comparison (resultsAgree) between every pair of honest orders:');
  console.log('tile            data          pairs  disagreeing  worst |x−y|/tolerance');
  for (const r of rows) console.log(`${r.tile.padEnd(16)}${r.data.padEnd(14)}${String(r.pairs).padStart(5)}  ${String(r.disagreeing).padStart(11)}  ${f(r.worstRatio).padStart(10)}`);
}

const e = (x: number) => x.toExponential(2);
const f = (x: number) => x.toFixed(3);

function printHonest(rows: HonestRow[]): void {
  console.log('\nHonest error, worst over summation orders (κ = ‖e_i‖/(u(√k‖c_i‖+P_i)); κ_M = ‖e_i‖/(√k·u·M_i); elem κ = |e_ij|/(√k·u·(|A||B|)_ij); residual ratio = |e_i·r|/τ_i):');
  console.log('tile            data          κ max   κ_M   elem κ  elem/ku  resid max  resid p99.99  M̂/M   rejected  recomputed');
  const keys = [...new Set(rows.map((r) => `${r.tile}|${r.data}`))];
  for (const key of keys) {
    const g = rows.filter((r) => `${r.tile}|${r.data}` === key);
    const max = (sel: (r: HonestRow) => number) => Math.max(...g.map(sel));
    const [tile, data] = key.split('|');
    console.log(
      `${tile!.padEnd(16)}${data!.padEnd(14)}${f(max((r) => r.rowKappa)).padStart(6)} ${f(max((r) => r.magnitudeKappa)).padStart(6)}  ${f(max((r) => r.elemKappa)).padStart(6)}  ${f(max((r) => r.elemRelativeKu)).padStart(7)}  ${f(max((r) => r.residualMax)).padStart(9)}  ${f(max((r) => r.residualP9999)).padStart(12)}  ${f(max((r) => r.magnitudeLooseness)).padStart(5)}  ${String(g.filter((r) => !r.checkOk).length).padStart(8)}  ${String(g.reduce((s, r) => s + r.recomputedRows, 0)).padStart(10)}`,
    );
  }
}

function printCatch(rows: CatchRow[]): void {
  console.log('\nCatch rate of one changed element (escapes / trials with the chosen rounds; one round: pass rate vs bound for δ = 10⁻⁴·M_i):');
  console.log('tile            data          change          rounds  escapes      1-round pass  bound    guaranteed escape');
  for (const r of rows) {
    console.log(`${r.tile.padEnd(16)}${r.data.padEnd(14)}${r.change.padEnd(16)}${String(r.rounds).padStart(6)}  ${`${r.escapes}/${r.trials}`.padEnd(11)}  ${f(r.oneRoundPassRate).padStart(12)}  ${f(r.oneRoundBound)}    ${e(r.guaranteedEscape)}`);
  }
}

async function main(): Promise<void> {
  const started = performance.now();
  const honest = measureHonest();
  printHonest(honest);
  const replicas = measureReplicas();
  printReplicas(replicas);
  const caught = measureCatch();
  printCatch(caught);
  const dawn = values['no-dawn'] ? 'not run: --no-dawn' : await runDawnKernels(quick);
  const chromium = values['no-chromium'] ? 'not run: --no-chromium' : await runChromiumKernels().catch((err: unknown) => `not run: ${err instanceof Error ? err.message : String(err)}`);
  printChromium(chromium);
  const report = {
    generatedAt: new Date().toISOString(),
    seconds: (performance.now() - started) / 1000,
    model: { rejectZ: HONEST_Z, modelZ: MODEL_Z, kappa: ROUNDING_KAPPA, rounds: Object.fromEntries([64, 256, 1024, 4096, 8192].map((k) => [k, freivaldsRounds(k)])) },
    honest,
    replicas,
    caught,
    dawn,
    chromium,
  };
  await mkdir('bench-results', { recursive: true });
  await writeFile('bench-results/honest-error.json', JSON.stringify(report, null, 2) + '\n');
  console.log(`\nwrote bench-results/honest-error.json in ${report.seconds.toFixed(0)} s`);
  process.exit(0);
}

void main();
