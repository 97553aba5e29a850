/**
 * Headless contributor for rigs and servers:
 *   npx tessera-agent --server http://host:8080[,http://other:8080] [--duty 50] [--hours 22:00-07:00] [--once]
 * Runs the page's own kernel and contributor loop (client/gpu, client/worker)
 * on Dawn's Node binding, with the same protocol, identity and credits.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { acquireGpu, GpuUnavailableError, type GpuHandle } from '../client/gpu/device';
import { autotune, tuningKey } from '../client/gpu/autotune';
import { MatmulKernel } from '../client/gpu/matmul-kernel';
import { ContributorLoop } from '../client/worker/contributor-loop';
import type { WorkerEvent } from '../client/worker/events';
import { createNodeGpu, listAdapters, NO_ADAPTER_HELP } from './dawn';
import { parseHours, withinHours, type HoursWindow } from './hours';
import { loadTuningFile, readShaderSources, saveTuningFile } from './kernels';

interface Options {
  /** The coordinators of one network, tried in turn when one is unreachable. */
  server: string[];
  listGpus?: boolean;
  adapter?: string;
  duty: number;
  hours?: HoursWindow;
  name?: string;
  team?: string;
  tokenFile: string;
  once?: boolean;
  summaryEvery: number;
}

const percent = (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 1 || n > 100) throw new InvalidArgumentError('a percentage from 1 to 100');
  return n;
};
const seconds = (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 1) throw new InvalidArgumentError('seconds, at least 1');
  return n;
};

const log = (line: string) => console.log(`${new Date().toISOString()} ${line}`);

async function loadToken(file: string): Promise<string | undefined> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.trim() || undefined;
}

async function saveToken(file: string, token: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, token + '\n', { mode: 0o600 });
}

async function main(opts: Options): Promise<void> {
  const gpu = createNodeGpu(opts.adapter ? [`adapter=${opts.adapter}`] : []);
  if (opts.listGpus) {
    const adapters = await listAdapters(gpu);
    if (adapters.length === 0) throw new GpuUnavailableError(NO_ADAPTER_HELP);
    for (const a of adapters) console.log([a.vendor, a.architecture, a.device, a.description].filter(Boolean).join(' · ') || 'unnamed adapter');
    return;
  }
  const sources = await readShaderSources();
  const userAgent = `tessera-agent/0.1.0 node/${process.versions.node}`;
  const tuningFile = join(dirname(opts.tokenFile), 'kernel-tuning.json');
  let loop: ContributorLoop | undefined;
  let stopping = false;
  const totals = { verified: 0, rejected: 0, flops: 0, ms: 0 };

  const start = async (): Promise<void> => {
    let handle: GpuHandle;
    try {
      handle = await acquireGpu(gpu, (reason) => {
        log(`GPU device lost (${reason}); starting again on a new device`);
        loop?.stop();
        if (!stopping) setTimeout(() => void start().catch(fatal), 1_000);
      });
    } catch (err) {
      throw err instanceof GpuUnavailableError ? new GpuUnavailableError(`${err.message}\n${NO_ADAPTER_HELP}`) : err;
    }
    const kernel = new MatmulKernel(handle.device, sources);
    const a = handle.adapter;
    log(`GPU: ${[a.vendor, a.architecture, a.device, a.description].filter(Boolean).join(' · ') || 'unnamed adapter'}; duty ${opts.duty}%`);
    const key = tuningKey(a, userAgent, sources);
    let tuning = await loadTuningFile(tuningFile, key);
    if (!tuning) {
      log('timing the matmul kernels on this GPU (once per GPU, driver and agent version)');
      tuning = await autotune(kernel, key);
      await saveTuningFile(tuningFile, tuning).catch((err: unknown) => log(`could not keep the tuning in ${tuningFile}: ${String(err)}`));
    }
    kernel.setTuning(tuning);
    log(`kernels: ${(['small', 'medium', 'large'] as const).map((c) => `${c} ${tuning.configs[c]} ${tuning.gflops[c].toFixed(2)} GFLOPS`).join(', ')}`);
    loop = new ContributorLoop({
      serverUrl: opts.server[0]!,
      fallbackUrls: opts.server.slice(1),
      gpu: handle,
      kernel,
      agentKind: 'agent',
      userAgent: `${userAgent}${opts.name ? ` name=${opts.name}` : ''}`,
      tuning,
      duty: () => opts.duty / 100,
      serial: opts.once === true,
      mayWork: () => !opts.hours || withinHours(opts.hours, new Date()),
      loadToken: () => loadToken(opts.tokenFile),
      saveToken: (t) => saveToken(opts.tokenFile, t),
      emit: onEvent,
    });
    loop.start();
  };

  const onEvent = (e: WorkerEvent) => {
    if (e.type === 'identity') {
      log(`joined ${opts.server.join(' or ')} as contributor ${e.contributorId}`);
      if (opts.name || opts.team) {
        void loop
          ?.setProfile({ ...(opts.name ? { name: opts.name } : {}), ...(opts.team ? { team: opts.team } : {}) })
          .then((r) => log(r.ok ? `shown as ${r.name ?? 'anonymous'}${r.team ? ` (team ${r.team})` : ''}` : `name refused: ${r.error.message}`));
      }
    }
    if (e.type === 'state' && (e.state === 'error' || e.state === 'connecting') && e.message) log(`${e.state}: ${e.message}`);
    if (e.type === 'benchmark') log(`network benchmark for job ${e.jobId}: ${e.ok ? 'accepted' : `refused: ${e.message ?? ''}`}`);
    if (e.type === 'shard') {
      if (e.ok) {
        totals.verified++;
        totals.flops += e.gflops * e.computeMs * 1e6;
        totals.ms += e.computeMs;
      } else totals.rejected++;
      log(`shard ${e.shardId} job ${e.jobId} ${e.computeMs.toFixed(0)} ms ${e.gflops.toFixed(2)} GFLOPS ${e.ok ? 'accepted' : `REJECTED ${e.message ?? ''}`}`);
      if (opts.once) void shutdown(e.ok ? 0 : 1);
    }
  };

  const shutdown = async (code: number) => {
    if (stopping) return;
    stopping = true;
    loop?.stop(); // disconnecting hands every lease back to the coordinator at once
    log(`stopped: ${totals.verified} shards accepted, ${totals.rejected} rejected`);
    setTimeout(() => process.exit(code), 200);
  };
  process.on('SIGTERM', () => void shutdown(0));
  process.on('SIGINT', () => void shutdown(0));
  const summary = setInterval(() => {
    const gf = totals.ms > 0 ? totals.flops / (totals.ms * 1e6) : 0;
    log(`summary: ${totals.verified} shards accepted, ${totals.rejected} rejected, ${(totals.flops / 1e9).toFixed(1)} GFLOP at ${gf.toFixed(2)} GFLOPS while computing`);
  }, opts.summaryEvery * 1000);
  summary.unref();
  await start();
}

function fatal(err: unknown): never {
  console.error(`tessera-agent: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}

/** `http://a:8080,http://b:8080` → both URLs, checked. */
function urlList(value: string): string[] {
  const urls = value.split(',').map((u) => u.trim()).filter(Boolean);
  for (const u of urls) {
    if (!URL.canParse(u) || !/^https?:$/.test(new URL(u).protocol)) throw new InvalidArgumentError(`not an http(s) URL: ${u}`);
  }
  if (urls.length === 0) throw new InvalidArgumentError('give at least one coordinator URL');
  return urls;
}

const program = new Command('tessera-agent')
  .description('donate this machine’s GPU to a Tessera coordinator')
  .option('--server <urls>', 'coordinator URL, or several of one network separated by commas', urlList, urlList(process.env.TESSERA_URL ?? 'http://localhost:8080'))
  .option('--list-gpus', 'list the GPUs WebGPU can use, then exit')
  .option('--adapter <name>', 'use the adapter whose name contains this text')
  .option('--duty <percent>', 'share of time the GPU may be busy', percent, 100)
  .option('--hours <HH:MM-HH:MM>', 'only work in this daily window (local time)', parseHours)
  .option('--name <name>', 'display name on the leaderboard')
  .option('--team <team>', 'team on the leaderboard')
  .option('--token-file <path>', 'where the identity token is kept', join(homedir(), '.config', 'tessera', 'agent-token'))
  .option('--once', 'compute one shard, then exit (0 if it was accepted)')
  .option('--summary-every <seconds>', 'how often to log a summary', seconds, 300)
  .action((opts: Options) => main(opts).catch(fatal));

program.parseAsync().catch(fatal);
