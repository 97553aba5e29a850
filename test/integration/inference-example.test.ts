/** examples/inference/run.sh, as a requester runs it: builds a model and a batch, submits with curl, checks with onnxruntime-node. */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { useCoordinatorHarness } from '../support/harness';

const run = promisify(execFile);
const h = useCoordinatorHarness({ canaries: false, targetTiles: 4 });

describe('examples/inference/run.sh', () => {
  it('submits with curl, waits, downloads and checks the answer against onnxruntime-node', async () => {
    await h.start();
    await h.spawn({ kind: 'honest' }, { inference: true });
    const dir = await mkdtemp(join(tmpdir(), 'tessera-example-'));
    try {
      const { stdout } = await run('bash', ['examples/inference/run.sh', dir], {
        env: { ...process.env, TESSERA_URL: h.coord.url, TESSERA_KEY: h.coord.apiKey, BATCH: '37' },
        timeout: 120_000,
      });
      expect(stdout).toMatch(/job [0-9a-f-]{36} queued/);
      expect(stdout).toMatch(/completed 4\/4/);
      expect(stdout).toMatch(/probs \(37, 10\): largest difference from onnxruntime-node/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('the CLI submits an inference job, waits and writes the .npy, which the example checker accepts', async () => {
    await h.start();
    await h.spawn({ kind: 'honest' }, { inference: true });
    const dir = await mkdtemp(join(tmpdir(), 'tessera-cli-'));
    try {
      const tsx = (args: string[]) => run(process.execPath, ['--import', 'tsx', ...args], { timeout: 120_000 });
      await tsx(['examples/inference/make-model.ts', dir, '12']);
      const { stdout } = await tsx(['cli/tessera.ts', '--server', h.coord.url, '--key', h.coord.apiKey, 'submit', 'inference', join(dir, 'model.onnx'), join(dir, 'x.npy'), '-o', join(dir, 'probs.npy')]);
      expect(stdout).toMatch(/inference\s+completed/);
      expect((await tsx(['examples/inference/check.ts', dir])).stdout).toMatch(/probs \(12, 10\)/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
