import * as Comlink from 'comlink';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { ContributorStats } from '../shared/api';
import { loadSettings, loadTotals, saveSettings, saveTotals, type PageSettings, type PageTotals } from './storage/identity-store';
import type { GpuWorkerApi, WorkerEvent } from './worker/events';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

const toggle = $<HTMLButtonElement>('toggle');
const stateEl = $('state');
const message = $('message');
let settings: PageSettings = { duty: 1, background: false };
let totals: PageTotals = { verified: 0, rejected: 0, gflop: 0, busyMs: 0 };
/** The user pressed Start (the page may still be paused because the tab is hidden). */
let wanted = false;
let running = false;
let contributorId: string | undefined;
const recent: { at: number; gflops: number }[] = [];
let spark: uPlot | undefined;

/** Credits are the coordinator's to count; the page only shows them. */
async function refreshCredits(): Promise<void> {
  if (!contributorId) return;
  const res = await fetch(`/api/v1/contributors/${contributorId}`);
  if (!res.ok) return;
  const stats = (await res.json()) as ContributorStats;
  $('credits').textContent = stats.credits.toFixed(3);
  for (const field of ['name', 'team'] as const) {
    const input = $<HTMLInputElement>(field);
    if (!input.value && stats[field] && document.activeElement !== input) input.value = stats[field];
  }
}

function setState(state: string, detail?: string): void {
  stateEl.textContent = state;
  stateEl.dataset.state = state;
  if (detail !== undefined) message.textContent = detail;
}

function renderTotals(): void {
  $('verified').textContent = String(totals.verified);
  $('rejected').textContent = String(totals.rejected);
  $('gflops-avg').textContent = totals.busyMs > 0 ? ((totals.gflop * 1000) / totals.busyMs).toFixed(2) : '–';
  // For tests and the curious: how busy the GPU has been since Start.
  document.body.dataset.busyMs = String(busySinceStart);
}

let busySinceStart = 0;

function renderSpark(): void {
  const data: uPlot.AlignedData = [recent.map((r) => r.at / 1000), recent.map((r) => r.gflops)];
  const el = $('spark');
  if (!spark) {
    spark = new uPlot(
      { width: el.clientWidth || 400, height: 90, legend: { show: false }, scales: { y: { range: (_u, _min, max) => [0, Math.max(max, 1e-6) * 1.15] } }, axes: [{ show: false }, { size: 50 }], series: [{}, { stroke: '#2a9d3a', width: 2, points: { show: true, size: 3 } }] },
      data,
      el,
    );
  } else spark.setData(data);
}

function onEvent(e: WorkerEvent): void {
  switch (e.type) {
    case 'state':
      setState(e.state, e.message ?? '');
      break;
    case 'tuning':
      setState('tuning', `Timing the kernels on your GPU, once: ${e.progress.config} (${e.progress.done + 1} of ${e.progress.total})`);
      break;
    case 'tuned':
      $('gpu-kernels').textContent =
        (['small', 'medium', 'large'] as const).map((c) => `${c} tiles: ${e.tuning.configs[c]} (${e.tuning.gflops[c].toFixed(2)} GFLOPS)`).join(' · ') +
        (e.cached ? '' : ` — tuned in ${(e.tuning.ms / 1000).toFixed(1)} s`);
      break;
    case 'model':
      $('last').textContent = `downloaded a model's weights (${(e.bytes / 1e6).toFixed(1)} MB); kept in this browser for later jobs on it`;
      break;
    case 'benchmark':
      $('last').textContent = `network benchmark for job ${e.jobId}: ${e.ok ? 'accepted' : `refused — ${e.message ?? ''}`}`;
      break;
    case 'identity':
      $('contributor').textContent = e.contributorId;
      contributorId = e.contributorId;
      $<HTMLAnchorElement>('my-stats').href = `/api/v1/contributors/${e.contributorId}`;
      $('my-stats').hidden = false;
      void refreshCredits();
      break;
    case 'shard':
      if (e.ok) {
        totals.verified++;
        totals.gflop += (e.gflops * e.computeMs) / 1000;
        void refreshCredits();
      } else totals.rejected++;
      totals.busyMs += e.computeMs;
      busySinceStart += e.computeMs;
      void saveTotals(totals);
      recent.push({ at: Date.now(), gflops: e.gflops });
      if (recent.length > 60) recent.shift();
      $('gflops-now').textContent = e.gflops.toFixed(2);
      $('last').textContent = `${e.computeMs.toFixed(0)} ms, ${e.gflops.toFixed(2)} GFLOPS${e.ok ? '' : ` — ${e.message ?? 'rejected'}`}`;
      renderTotals();
      renderSpark();
      break;
  }
}

function explainMissingWebGpu(reason: string): void {
  const status = $('gpu-status');
  status.classList.add('warning');
  status.textContent =
    `This browser cannot run WebGPU here (${reason}). Tessera needs WebGPU: use a current Chrome or Edge (113+), ` +
    `Safari 26+, or Firefox 141+ on Windows; on Linux start Chrome with --enable-unsafe-webgpu. ` +
    `The page must be opened over https:// or from localhost.`;
  setState('unavailable', '');
}

async function main(): Promise<void> {
  settings = await loadSettings();
  totals = await loadTotals();
  $<HTMLSelectElement>('duty').value = String(settings.duty);
  $<HTMLInputElement>('background').checked = settings.background;
  renderTotals();
  if (!window.isSecureContext || !('gpu' in navigator) || !navigator.gpu) {
    explainMissingWebGpu(window.isSecureContext ? 'navigator.gpu is missing' : 'the page is not in a secure context');
    return;
  }
  const worker = Comlink.wrap<GpuWorkerApi>(new Worker(new URL('./worker/gpu-worker.ts', import.meta.url), { type: 'module' }));
  const probe = await worker.probe();
  if (!probe.ok) {
    explainMissingWebGpu(probe.message);
    return;
  }
  const { adapter, limits } = probe;
  $('gpu-status').textContent = 'WebGPU is ready.';
  $('gpu-details').hidden = false;
  $('gpu-adapter').textContent = [adapter.vendor, adapter.architecture, adapter.device, adapter.description].filter(Boolean).join(' · ') || 'unnamed adapter';
  $('gpu-limit').textContent = `${(limits.maxStorageBufferBindingSize / 2 ** 20).toFixed(0)} MiB`;

  const listener = Comlink.proxy(onEvent);
  // Stopping disconnects, and the coordinator hands this tab's shards to others at once.
  const run = async () => {
    if (running) return;
    running = true;
    busySinceStart = 0;
    document.body.dataset.startedAt = String(Date.now());
    await worker.start(location.origin, listener, settings.duty);
  };
  const halt = async (why: string) => {
    if (!running) return;
    running = false;
    await worker.stop();
    setState('paused', why);
  };
  const sync = () => {
    toggle.textContent = wanted ? 'Pause' : 'Start';
    if (wanted && (settings.background || !document.hidden)) void run();
    else if (wanted) void halt('paused while this tab is hidden; it resumes when you come back');
    else void halt('');
  };
  toggle.addEventListener('click', () => {
    wanted = !wanted;
    sync();
  });
  document.addEventListener('visibilitychange', sync);
  $<HTMLSelectElement>('duty').addEventListener('change', (ev) => {
    settings.duty = Number((ev.target as HTMLSelectElement).value);
    void saveSettings(settings);
    void worker.setDuty(settings.duty);
  });
  $<HTMLInputElement>('background').addEventListener('change', (ev) => {
    settings.background = (ev.target as HTMLInputElement).checked;
    void saveSettings(settings);
    sync();
  });
  $<HTMLFormElement>('profile').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const value = (id: string) => $<HTMLInputElement>(id).value.trim() || null;
    void worker.setProfile(value('name'), value('team')).then((reply) => {
      // textContent, never innerHTML: what comes back is user-chosen text.
      $('profile-message').textContent = reply.ok ? `Saved: ${reply.name ?? 'anonymous'}${reply.team ? ` of team ${reply.team}` : ''}.` : reply.error.message;
    });
  });
  toggle.disabled = false;
  const params = new URLSearchParams(location.search);
  if (params.get('autostart') === '1') {
    // A kiosk or rig opened with ?autostart=1 is meant to work unattended, hidden or not.
    settings.background = true;
    $<HTMLInputElement>('background').checked = true;
    wanted = true;
    sync();
  }
}

main().catch((err: unknown) => setState('error', err instanceof Error ? err.message : String(err)));
