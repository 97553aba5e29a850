/**
 * The honest error of our WGSL kernels as Dawn runs them (the `webgpu`
 * package; Chromium's WebGPU is the same Dawn). Without a GPU, Dawn runs on
 * SwiftShader's Vulkan from Debian's chromium package: start the bench with
 * LD_LIBRARY_PATH=/usr/lib/chromium VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json.
 * With no adapter at all, the report says so instead.
 */
import { createNodeGpu } from '../agent/dawn';
import { readShaderSources } from '../agent/kernels';
import { acquireGpu } from '../client/gpu/device';
import { MatmulKernel } from '../client/gpu/matmul-kernel';
import { freivaldsCheck } from '../shared/freivalds';
import { resultsAgree } from '../shared/result-compare';
import { classMatrices, pickRows, productRows, SUMMATION_ORDERS, type DataClass } from '../test/support/float32-orders';
import { honestStats, type HonestStats } from './honest-error-stats';

export interface DawnRow extends HonestStats {
  adapter: string;
  config: string;
  tile: string;
  data: DataClass;
  /** The whole tile through freivaldsCheck (the stats' check covers only the sampled rows). */
  tileCheckOk: boolean;
  /** resultsAgree with a sequential float32 sum on the CPU, on the sampled rows: replication across device kinds. */
  agreesWithCpu: boolean;
}

const SHAPES = [
  { rows: 64, k: 256, cols: 64 },
  { rows: 128, k: 2048, cols: 128 },
  { rows: 128, k: 4096, cols: 128 },
];
const CLASSES: DataClass[] = ['uniform', 'positive', 'constant', 'heavy-tailed'];
/** Rows whose error is measured in each result (every row is still checked). */
const SAMPLE_ROWS = 8;

export async function runDawnKernels(quick: boolean): Promise<DawnRow[] | string> {
  // Held until the end: Dawn's instance must outlive its devices (garbage-collected, it takes the process down).
  const gpu = createNodeGpu();
  let handle;
  try {
    handle = await acquireGpu(gpu, () => {});
  } catch (err) {
    return `not run: ${err instanceof Error ? err.message : String(err)} (without a GPU: LD_LIBRARY_PATH=/usr/lib/chromium VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json)`;
  }
  const adapter = [handle.adapter.vendor, handle.adapter.architecture, handle.adapter.description].filter(Boolean).join(' · ');
  const kernel = new MatmulKernel(handle.device, await readShaderSources());
  const out: DawnRow[] = [];
  for (const shape of quick ? SHAPES.slice(0, 1) : SHAPES) {
    for (const data of CLASSES) {
      const { a, b } = classMatrices(data, shape.rows, shape.k, shape.cols, 3000 + shape.k);
      const sample = Array.from({ length: SAMPLE_ROWS }, (_, n) => Math.floor((n * shape.rows) / SAMPLE_ROWS));
      const cpu = productRows(SUMMATION_ORDERS[0]!, a, b, sample, shape.k, shape.cols);
      for (const config of kernel.configs()) {
        const c = await kernel.run(a, b, shape.rows, shape.k, shape.cols, config);
        const rowsOfC = pickRows(c, sample, shape.cols);
        const stats = honestStats(pickRows(a, sample, shape.k), b, rowsOfC, sample.length, shape.k, shape.cols, 500, 11);
        const tileCheckOk = freivaldsCheck(a, b, c, shape.rows, shape.k, shape.cols).ok;
        const agreesWithCpu = resultsAgree(rowsOfC, cpu, shape.k, shape.cols);
        out.push({ adapter, config: config.id, tile: `${shape.rows}×${shape.k}×${shape.cols}`, data, tileCheckOk, agreesWithCpu, ...stats });
      }
    }
    console.error(`dawn kernels: ${shape.rows}×${shape.k}×${shape.cols} done`);
  }
  handle.device.destroy();
  void gpu;
  printDawn(out);
  return out;
}

function printDawn(rows: DawnRow[]): void {
  const f = (x: number) => x.toFixed(3);
  console.log(`\nWGSL kernels in Dawn (${rows[0]?.adapter ?? 'no adapter'}): honest error per configuration`);
  console.log('config              tile           data          κ max  elem κ  elem/ku  resid max  tile check  recomputed  agrees with CPU');
  for (const r of rows) {
    console.log(`${r.config.padEnd(20)}${r.tile.padEnd(15)}${r.data.padEnd(14)}${f(r.rowKappa).padStart(6)}  ${f(r.elemKappa).padStart(6)}  ${f(r.elemRelativeKu).padStart(7)}  ${f(r.residualMax).padStart(9)}  ${(r.tileCheckOk ? 'accepted' : 'REJECTED').padStart(10)}  ${String(r.recomputedRows).padStart(10)}  ${r.agreesWithCpu ? 'yes' : 'NO'}`);
  }
}
