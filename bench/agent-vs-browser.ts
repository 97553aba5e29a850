/**
 * The agent and the browser page, side by side on the same machine and job:
 * `npm run bench:agent-vs-browser [-- --size 1024]`. Runs the same matmul once
 * with only a headless agent (Dawn) contributing, then once with only the page
 * (Chromium), and prints both throughputs and their ratio; writes
 * bench-results/agent-vs-browser.json.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { spawnAgent } from '../test/support/agent-process';
import { launchBrowser } from '../test/support/browser';
import { makeDataDir, startTestCoordinator, submitMatmul, waitForJob, type TestCoordinator } from '../test/support/coordinator';
import { randomMatrix } from '../test/support/matrices';

const { values } = parseArgs({ options: { size: { type: 'string', default: '1024' } } });
const n = Number(values.size);

async function timeJob(coord: TestCoordinator): Promise<{ seconds: number; gflops: number; tiles: number }> {
  const a = randomMatrix(n, n, 1);
  const job = await submitMatmul(coord.url, { rows: n, cols: n, data: a }, { rows: n, cols: n, data: randomMatrix(n, n, 2) });
  const t0 = performance.now();
  const done = await waitForJob(coord.url, job.id, 3_600_000);
  if (done.status !== 'completed') throw new Error(`job ended ${done.status}`);
  const seconds = (performance.now() - t0) / 1000;
  return { seconds, gflops: (2 * n ** 3) / seconds / 1e9, tiles: done.progress.total };
}

async function main(): Promise<void> {
  const clientDir = fileURLToPath(new URL('../dist/client', import.meta.url));
  const coord = await startTestCoordinator({ clientDir, canaries: false, leaseBaseMs: 600_000 });
  const dir = await makeDataDir();
  try {
    const agent = spawnAgent(['--server', coord.url, '--token-file', join(dir, 'token'), '--summary-every', '3600']);
    await agent.waitFor(/joined .* as contributor/);
    const agentRun = await timeJob(coord);
    agent.child.kill('SIGTERM');
    await agent.exited;

    const browser = await launchBrowser();
    const page = await browser.newPage();
    await page.goto(`${coord.url}/?autostart=1`);
    await page.waitForFunction(() => document.getElementById('state')?.textContent === 'idle', { timeout: 60_000 });
    const browserRun = await timeJob(coord);
    await browser.close();

    console.log(`${n}³ matmul, ${agentRun.tiles} tiles, end to end (transfers and verification included):`);
    console.log(`  agent (Dawn):        ${agentRun.seconds.toFixed(1)} s, ${agentRun.gflops.toFixed(3)} GFLOPS`);
    console.log(`  page (Chromium):     ${browserRun.seconds.toFixed(1)} s, ${browserRun.gflops.toFixed(3)} GFLOPS`);
    console.log(`  agent / page:        ${(agentRun.gflops / browserRun.gflops).toFixed(2)}×`);
    await mkdir('bench-results', { recursive: true });
    await writeFile('bench-results/agent-vs-browser.json', JSON.stringify({ date: new Date().toISOString(), n, agent: agentRun, browser: browserRun }, null, 2));
  } finally {
    await coord.dispose();
    await rm(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
