/**
 * One job end to end through a real browser contributor:
 * `npm run bench:browser-job [-- --m 2048 --k 2048 --n 2048 --pages 1]`.
 * Starts the coordinator, opens the contributor page in headless Chromium
 * (WebGPU; SwiftShader on machines without a GPU), submits A·B over REST,
 * waits, downloads C and compares sampled rows with a float64 CPU reference.
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { launchBrowser } from '../test/support/browser';
import { downloadResult, startTestCoordinator, submitMatmul, waitForJob } from '../test/support/coordinator';
import { randomMatrix } from '../test/support/matrices';

const { values } = parseArgs({
  options: { m: { type: 'string', default: '2048' }, k: { type: 'string', default: '2048' }, n: { type: 'string', default: '2048' }, pages: { type: 'string', default: '1' } },
});
const [m, k, n] = [Number(values.m), Number(values.k), Number(values.n)];

async function main(): Promise<void> {
  const coord = await startTestCoordinator({ clientDir: fileURLToPath(new URL('../dist/client', import.meta.url)), leaseBaseMs: 600_000 });
  const browser = await launchBrowser();
  try {
    for (let i = 0; i < Number(values.pages); i++) await (await browser.newPage()).goto(`${coord.url}/?autostart=1`);
    const a = randomMatrix(m, k, 1);
    const b = randomMatrix(k, n, 2);
    const t0 = performance.now();
    const job = await submitMatmul(coord.url, { rows: m, cols: k, data: a }, { rows: k, cols: n, data: b });
    const tSubmitted = performance.now();
    const done = await waitForJob(coord.url, job.id, 3_600_000);
    const tDone = performance.now();
    const c = await downloadResult(coord.url, job.id);
    // Spot-check 8 rows against float64 (the whole product on the CPU would take minutes at this size).
    let worst = 0;
    for (let s = 0; s < 8; s++) {
      const i = Math.floor((s * (m - 1)) / 7);
      for (let j = 0; j < n; j++) {
        let ref = 0;
        let mag = 0;
        for (let p = 0; p < k; p++) {
          ref += a[i * k + p]! * b[p * n + j]!;
          mag += Math.abs(a[i * k + p]! * b[p * n + j]!);
        }
        worst = Math.max(worst, Math.abs(c.data[i * n + j]! - ref) / (mag * 2 ** -24 * Math.sqrt(k) * 8));
      }
    }
    const secs = (tDone - tSubmitted) / 1000;
    console.log(
      `${m}×${k}×${n}: ${done.status}, ${done.progress.total} tiles of ${done.tile.rows}×${done.tile.cols}, upload ${((tSubmitted - t0) / 1000).toFixed(1)} s, ` +
        `compute+verify ${secs.toFixed(1)} s (${((2 * m * n * k) / secs / 1e9).toFixed(2)} GFLOPS end to end), worst sampled error / tolerance ${worst.toFixed(3)}`,
    );
  } finally {
    await browser.close();
    await coord.dispose();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
