import * as Comlink from 'comlink';
import type { ContributorStats } from '../shared/api';
import type { GpuWorkerApi, WorkerEvent } from './worker/events';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

const toggle = $<HTMLButtonElement>('toggle');
const stateEl = $('state');
const message = $('message');
const counts = { verified: 0, rejected: 0 };
let running = false;
let contributorId: string | undefined;

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

function onEvent(e: WorkerEvent): void {
  switch (e.type) {
    case 'state':
      setState(e.state, e.message ?? '');
      break;
    case 'identity':
      $('contributor').textContent = e.contributorId;
      contributorId = e.contributorId;
      $<HTMLAnchorElement>('my-stats').href = `/api/v1/contributors/${e.contributorId}`;
      $('my-stats').hidden = false;
      void refreshCredits();
      break;
    case 'shard':
      if (e.ok) counts.verified++;
      else counts.rejected++;
      $('verified').textContent = String(counts.verified);
      $('rejected').textContent = String(counts.rejected);
      if (e.ok) void refreshCredits();
      $('last').textContent = `${e.computeMs.toFixed(0)} ms, ${e.gflops.toFixed(2)} GFLOPS${e.ok ? '' : ` — ${e.message ?? 'rejected'}`}`;
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
}

async function main(): Promise<void> {
  if (!window.isSecureContext || !('gpu' in navigator)) {
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
  const start = async () => {
    running = true;
    toggle.textContent = 'Stop';
    await worker.start(location.origin, listener);
  };
  const stop = async () => {
    running = false;
    toggle.textContent = 'Start';
    await worker.stop();
  };
  $<HTMLFormElement>('profile').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const value = (id: string) => $<HTMLInputElement>(id).value.trim() || null;
    void worker.setProfile(value('name'), value('team')).then((reply) => {
      // textContent, never innerHTML: what comes back is user-chosen text.
      $('profile-message').textContent = reply.ok ? `Saved: ${reply.name ?? 'anonymous'}${reply.team ? ` of team ${reply.team}` : ''}.` : reply.error.message;
    });
  });
  toggle.disabled = false;
  toggle.addEventListener('click', () => void (running ? stop() : start()));
  if (new URLSearchParams(location.search).get('autostart') === '1') await start();
}

main().catch((err: unknown) => setState('error', err instanceof Error ? err.message : String(err)));
