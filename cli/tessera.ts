/**
 * Requester CLI: `npx tessera submit matmul a.npy b.npy -o c.npy`,
 * `npx tessera submit inference model.onnx x.npy -o y.npy` (or `name=file.npy` per model input), `status`,
 * `wait`, `cancel`, `list`. Server from --server or TESSERA_URL (default
 * http://localhost:8080); key from --key, TESSERA_API_KEY, or
 * ./data/local-api-key on the coordinator's own machine.
 */
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LOCAL_KEY_FILE } from '../server/auth/api-keys';
import { SingleBar, Presets } from 'cli-progress';
import { Command, InvalidArgumentError } from 'commander';
import type { JobView } from '../shared/api';
import { TesseraClient } from './client';

const program = new Command('tessera')
  .description('submit jobs to a Tessera coordinator')
  .option('--server <url>', 'coordinator URL', process.env.TESSERA_URL ?? 'http://localhost:8080')
  .option('--key <key>', 'API key (default: $TESSERA_API_KEY, or ./data/local-api-key)');

function client(): TesseraClient {
  const opts = program.opts<{ server: string; key?: string }>();
  const localFile = join(process.env.TESSERA_DATA_DIR ?? './data', LOCAL_KEY_FILE);
  const key = opts.key ?? process.env.TESSERA_API_KEY ?? (existsSync(localFile) ? readFileSync(localFile, 'utf8').trim() : undefined);
  if (!key) throw new Error('no API key: pass --key, set TESSERA_API_KEY, or run where ./data/local-api-key exists');
  return new TesseraClient(opts.server, key);
}

const describe = (j: JobView) =>
  `${j.id}  ${j.type}  ${j.status}  ${j.progress.verified}/${j.progress.total} tiles verified  ${j.shape.m}×${j.shape.k}×${j.shape.n}${j.reason ? `  (${j.reason})` : ''}`;

async function waitFor(id: string, output: string | undefined): Promise<void> {
  const c = client();
  const bar = process.stderr.isTTY ? new SingleBar({ format: 'tiles {bar} {value}/{total} {status}', hideCursor: true }, Presets.shades_classic) : undefined;
  let started = false;
  const job = await c.follow(id, (j) => {
    if (!bar) return;
    if (!started) (bar.start(j.progress.total, j.progress.verified, { status: j.status }), (started = true));
    bar.update(j.progress.verified, { status: j.status });
  });
  bar?.stop();
  console.log(describe(job));
  if (job.status !== 'completed') {
    process.exitCode = 1;
    return;
  }
  if (output) {
    await writeFile(output, await c.result(id));
    console.log(`wrote ${output}`);
  }
}

const int = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError('an integer');
  return n;
};

program
  .command('submit')
  .argument('<type>', 'job type: matmul or inference')
  .argument('<files...>', 'matmul: a.npy (M×K) b.npy (K×N); inference: model.onnx, then x.npy for a one-input model or name=file.npy per input')
  .option('-o, --output <file>', 'wait, then write the result here (.npy; .npz for a model with several outputs)')
  .option('--priority <n>', '-10..10', int)
  .option('--verification <method>', 'matmul: freivalds or replication; inference: recompute or replication')
  .option('--no-wait', 'return once the job is accepted')
  .action(async (type: string, files: string[], opts: { output?: string; priority?: number; verification?: string; wait: boolean }) => {
    let job: JobView;
    if (type === 'matmul') {
      if (files.length !== 2) throw new Error('matmul takes two files: a.npy b.npy');
      job = await client().submitMatmul(files[0]!, files[1]!, opts);
    } else if (type === 'inference') {
      const [model, ...rest] = files;
      if (!model || rest.length === 0) throw new Error('inference takes the model and its inputs: model.onnx x.npy, or model.onnx name=file.npy …');
      const named = rest.map((f) => /^([^=]+)=(.+)$/.exec(f));
      const inputs = rest.length === 1 && !named[0] ? { input: rest[0]! } : Object.fromEntries(named.map((m, i) => {
        if (!m) throw new Error(`"${rest[i]}": name each input of a several-input model, as name=file.npy`);
        return [m[1]!, m[2]!];
      }));
      job = await client().submitInference(model, inputs, opts);
    } else throw new Error(`unknown job type "${type}"; supported: matmul, inference`);
    console.log(describe(job));
    if (opts.wait || opts.output) await waitFor(job.id, opts.output);
  });

program.command('status').argument('<id>').action(async (id: string) => console.log(describe(await client().job(id))));

program
  .command('wait')
  .argument('<id>')
  .option('-o, --output <file>', 'write the result here')
  .action(async (id: string, opts: { output?: string }) => waitFor(id, opts.output));

program.command('cancel').argument('<id>').action(async (id: string) => console.log(describe(await client().cancel(id))));

program
  .command('list')
  .option('--limit <n>', 'how many', int, 20)
  .action(async (opts: { limit: number }) => {
    for (const j of await client().list(opts.limit)) console.log(describe(j));
  });

program.parseAsync().catch((err: unknown) => {
  console.error(`tessera: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
