/**
 * Requester CLI: `npx tessera submit matmul a.npy b.npy -o c.npy`, `status`,
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
  .argument('<type>', 'job type: matmul')
  .argument('<a>', 'A (M×K) as float32 .npy')
  .argument('<b>', 'B (K×N) as float32 .npy')
  .option('-o, --output <file>', 'wait, then write the result here')
  .option('--priority <n>', '-10..10', int)
  .option('--verification <method>', 'freivalds or replication')
  .option('--no-wait', 'return once the job is accepted')
  .action(async (type: string, a: string, b: string, opts: { output?: string; priority?: number; verification?: string; wait: boolean }) => {
    if (type !== 'matmul') throw new Error(`unknown job type "${type}"; supported: matmul`);
    const job = await client().submitMatmul(a, b, opts);
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
