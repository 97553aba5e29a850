/**
 * `npm run bench:kernels [-- --sizes 256,512,1024,2048 --shapes 1000x700x1300 --reps 5]`
 * Opens the /bench page in headless system Chromium and, in that one browser,
 * times each configuration of our matmul family, the autotuned choice,
 * TensorFlow.js's tf.matMul and ONNX Runtime Web's WebGPU MatMul, plus a JS
 * loop on the CPU for context — all through the page's own runner, every
 * answer checked. Prints GFLOPS per size and our best as a ratio of TF.js
 * and ORT-web; writes everything to bench-results/kernels-<time>.json.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { BenchReport, BenchRequest } from '../client/bench/page';
import type { BenchRow, BenchShape } from '../client/bench/runner';
import type { TuningRecord } from '../client/gpu/autotune';
import { parseShapeText } from '../shared/tensor-shape';
import { launchBrowser, openBenchPage } from '../test/support/browser';
import { startTestCoordinator } from '../test/support/coordinator';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '256,512,1024,2048' },
    shapes: { type: 'string', default: '1000x700x1300' },
    warmup: { type: 'string', default: '1' },
    reps: { type: 'string', default: '5' },
    'cpu-max': { type: 'string', default: '1024' },
    out: { type: 'string' },
  },
});

/** A configuration this far behind our best at one size is not run at the next (it would take minutes on SwiftShader). */
const SKIP_BELOW = 1 / 3;

function parseShape(s: string): BenchShape {
  const shape = parseShapeText(s);
  if (!shape) throw new Error(`--shapes: "${s}" is not MxKxN`);
  return shape;
}

const shapeText = (s: BenchShape) => `${s.m}×${s.k}×${s.n}`;
const flopsOf = (s: BenchShape) => 2 * s.m * s.n * s.k;

async function main(): Promise<void> {
  const shapes: BenchShape[] = [
    ...values.sizes.split(',').filter(Boolean).map((x) => ({ m: Number(x), k: Number(x), n: Number(x) })),
    ...values.shapes.split(',').filter(Boolean).map(parseShape),
  ];
  const coord = await startTestCoordinator({ clientDir: fileURLToPath(new URL('../dist/client', import.meta.url)) });
  // One evaluate runs a whole size: at 2048 on SwiftShader that is many minutes.
  const browser = await launchBrowser({ protocolTimeoutMs: 3_600_000 });
  const rows: BenchRow[] = [];
  const skipped: { subject: string; shape: string; reason: string }[] = [];
  let environment: BenchReport['environment'] | undefined;
  try {
    const page = await openBenchPage(browser, coord.url, (err) => console.error('page error:', err));
    page.setDefaultTimeout(0);
    const configs = await page.evaluate(() => window.tesseraBench!.configs());
    const t0 = performance.now();
    const tuning: TuningRecord = await page.evaluate(() => window.tesseraBench!.tune());
    console.log(`autotuning took ${((performance.now() - t0) / 1000).toFixed(1)} s: ${(['small', 'medium', 'large'] as const).map((c) => `${c} → ${tuning.configs[c]} (${tuning.gflops[c].toFixed(2)} GFLOPS)`).join(', ')}`);

    // Largest shapes last, so each size can drop configurations that were hopeless at the one before.
    const ordered = [...shapes].sort((a, b) => flopsOf(a) - flopsOf(b));
    let active = [...configs.map((c) => c.id), 'autotuned'];
    for (const shape of ordered) {
      const subjects = [...active, 'tfjs-webgpu', 'ort-webgpu', ...(Math.max(shape.m, shape.n, shape.k) <= Number(values['cpu-max']) ? ['cpu-js'] : [])];
      const req: BenchRequest = { subjects, shapes: [shape], warmup: Number(values.warmup), reps: Number(values.reps) };
      const t = performance.now();
      const report: BenchReport = await page.evaluate((r) => window.tesseraBench!.run(r), req);
      environment = report.environment;
      rows.push(...report.rows);
      console.log(`${shapeText(shape)}: ${subjects.length} kernels in ${((performance.now() - t) / 1000).toFixed(0)} s`);
      const ours = report.rows.filter((r) => r.group === 'ours' || r.group === 'baseline');
      const best = Math.max(...ours.map((r) => r.wallGflops ?? 0));
      active = active.filter((id) => {
        const r = ours.find((x) => x.subject === id);
        const keep = id === 'autotuned' || (r?.wallGflops ?? 0) >= SKIP_BELOW * best;
        if (!keep) skipped.push({ subject: id, shape: `after ${shapeText(shape)}`, reason: `${(r?.wallGflops ?? 0).toFixed(3)} GFLOPS < ${SKIP_BELOW.toFixed(2)} × best ${best.toFixed(3)}` });
        return keep;
      });
    }
  } finally {
    await browser.close();
    await coord.dispose();
  }

  // Table: one block per shape.
  const ratios: { shape: string; bestOurs: string; oursGflops: number; autotunedGflops: number; tfjsGflops: number; ortGflops: number; bestVsTfjs: number; bestVsOrt: number; autotunedVsTfjs: number; autotunedVsOrt: number }[] = [];
  for (const shape of shapes) {
    const here = rows.filter((r) => r.m === shape.m && r.k === shape.k && r.n === shape.n);
    console.log(`\n${shapeText(shape)}`);
    console.log(`  ${'kernel'.padEnd(28)} ${'wall GFLOPS'.padStart(11)} ${'GPU GFLOPS'.padStart(11)} ${'runs'.padStart(5)}  check`);
    for (const r of [...here].sort((a, b) => (b.wallGflops ?? 0) - (a.wallGflops ?? 0))) {
      const name = r.resolved ? `${r.subject}→${r.resolved}` : r.subject;
      const check = r.error ? `ERROR ${r.error}` : r.check ? `${r.check.ok ? 'pass' : 'FAIL'} (${r.check.method}, worst ${r.check.worstRatio.toExponential(1)} of bound)` : '';
      console.log(`  ${name.padEnd(28)} ${(r.wallGflops?.toFixed(3) ?? '—').padStart(11)} ${(r.gpuGflops?.toFixed(3) ?? '—').padStart(11)} ${String(r.runs ?? '—').padStart(5)}  ${check}`);
    }
    const ok = (r: BenchRow | undefined) => (r && !r.error && r.check?.ok ? (r.wallGflops ?? 0) : 0);
    const ours = here.filter((r) => r.group === 'ours').sort((a, b) => ok(b) - ok(a));
    const best = ours[0];
    const auto = here.find((r) => r.subject === 'autotuned');
    const tfjs = ok(here.find((r) => r.subject === 'tfjs-webgpu'));
    const ort = ok(here.find((r) => r.subject === 'ort-webgpu'));
    if (best) {
      const x = {
        shape: shapeText(shape),
        bestOurs: best.subject,
        oursGflops: ok(best),
        autotunedGflops: ok(auto),
        tfjsGflops: tfjs,
        ortGflops: ort,
        bestVsTfjs: ok(best) / tfjs,
        bestVsOrt: ok(best) / ort,
        autotunedVsTfjs: ok(auto) / tfjs,
        autotunedVsOrt: ok(auto) / ort,
      };
      ratios.push(x);
      console.log(`  ours best (${x.bestOurs}) / TF.js = ${x.bestVsTfjs.toFixed(2)}×, / ORT-web = ${x.bestVsOrt.toFixed(2)}×; autotuned / TF.js = ${x.autotunedVsTfjs.toFixed(2)}×, / ORT-web = ${x.autotunedVsOrt.toFixed(2)}×`);
    }
  }
  for (const s of skipped) console.log(`skipped ${s.subject} ${s.shape}: ${s.reason}`);
  const failures = rows.filter((r) => r.error || !r.check?.ok);
  if (failures.length) console.log(`\n${failures.length} measurement(s) failed or gave a wrong answer: ${failures.map((r) => `${r.subject}@${r.m}×${r.k}×${r.n}`).join(', ')}`);

  const out = values.out ?? fileURLToPath(new URL(`../bench-results/kernels-${new Date().toISOString().replace(/[:.]/g, '-')}.json`, import.meta.url));
  await mkdir(fileURLToPath(new URL('../bench-results/', import.meta.url)), { recursive: true });
  await writeFile(
    out,
    JSON.stringify(
      {
        measuredAt: new Date().toISOString(),
        what: 'GFLOPS = 2·M·N·K / median wall-clock time of one run (launch to GPU completion; inputs resident; excludes upload, compilation, readback), same method for every kernel; gpuGflops from timestamp queries where available (our kernels only)',
        environment,
        ratios,
        skipped,
        rows,
      },
      null,
      2,
    ),
  );
  console.log(`\nwrote ${out}`);
  if (failures.length) process.exitCode = 1;
}

main().then(
  () => process.exit(process.exitCode ?? 0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
