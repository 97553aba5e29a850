/// <reference lib="webworker" />
import * as Comlink from 'comlink';
import { autotune, tuningKey, type TuningRecord } from '../gpu/autotune';
import { acquireGpu, type GpuHandle } from '../gpu/device';
import { MatmulKernel } from '../gpu/matmul-kernel';
import { InferenceOps } from '../gpu/inference-ops';
import { INFERENCE_SOURCES } from '../gpu/inference-sources';
import { indexedDbModelStore } from '../storage/model-store';
import { InferenceRunner } from './inference-run';
import { SHADER_SOURCES } from '../gpu/shader-sources';
import { loadToken, loadTuning, saveToken, saveTuning } from '../storage/identity-store';
import { ContributorLoop } from './contributor-loop';
import type { GpuWorkerApi, ProbeResult, WorkerEvent } from './events';

/**
 * The dedicated worker owns the GPUDevice, the compiled pipelines and the
 * socket that carries tensors, so the page's thread never blocks on them.
 */
let gpu: GpuHandle | undefined;
let kernel: MatmulKernel | undefined;
let ops: InferenceOps | undefined;
let tuning: TuningRecord | undefined;
let loop: ContributorLoop | undefined;
let listener: ((e: WorkerEvent) => void) | undefined;

async function ensureGpu(): Promise<GpuHandle> {
  if (gpu) return gpu;
  gpu = await acquireGpu(navigator.gpu, (reason) => {
    // A lost device cannot be reused: drop it and its pipelines, then start over on a new one.
    gpu = undefined;
    kernel = undefined;
    ops = undefined;
    const wasRunning = loop !== undefined;
    loop?.stop();
    loop = undefined;
    listener?.({ type: 'state', state: 'error', message: `GPU device lost (${reason}); recovering` });
    if (wasRunning && listener) void api.start(currentServer, listener);
  });
  kernel = new MatmulKernel(gpu.device, SHADER_SOURCES);
  ops = new InferenceOps(gpu.device, INFERENCE_SOURCES);
  return gpu;
}

/** Tunes once per adapter, browser and kernel version; later starts reuse the kept result. */
async function ensureTuning(g: GpuHandle, k: MatmulKernel, emit: (e: WorkerEvent) => void): Promise<TuningRecord> {
  const key = tuningKey(g.adapter, navigator.userAgent, SHADER_SOURCES);
  if (tuning?.key === key) return tuning;
  const kept = await loadTuning(key).catch(() => undefined);
  if (kept) {
    tuning = kept;
    emit({ type: 'tuned', tuning: kept, cached: true });
    return kept;
  }
  emit({ type: 'state', state: 'tuning', message: 'timing the kernels on this GPU (once)' });
  tuning = await autotune(k, key, (progress) => emit({ type: 'tuning', progress }));
  await saveTuning(tuning).catch(() => undefined); // private browsing: tune again next time
  emit({ type: 'tuned', tuning, cached: false });
  return tuning;
}

let currentServer = '';
let duty = 1;

const api: GpuWorkerApi = {
  async probe(): Promise<ProbeResult> {
    try {
      const g = await ensureGpu();
      return { ok: true, adapter: g.adapter, limits: g.limits };
    } catch (err) {
      return { ok: false, message: err instanceof Error ? err.message : String(err) };
    }
  },
  async start(serverUrl, onEvent, startDuty) {
    currentServer = serverUrl;
    if (startDuty !== undefined) duty = startDuty;
    listener = onEvent;
    const g = await ensureGpu();
    loop?.stop();
    const t = await ensureTuning(g, kernel!, onEvent);
    kernel!.setTuning(t);
    loop = new ContributorLoop({
      serverUrl,
      gpu: g,
      kernel: kernel!,
      agentKind: 'page',
      userAgent: navigator.userAgent,
      tuning: t,
      inference: new InferenceRunner(ops!, indexedDbModelStore, serverUrl, g.limits.maxStorageBufferBindingSize, (ref) =>
        onEvent({ type: 'model', sha256: ref.sha256, bytes: ref.bytes }),
      ),
      duty: () => duty,
      loadToken,
      saveToken,
      emit: (e) => onEvent(e),
    });
    loop.start();
  },
  async setDuty(d) {
    duty = Math.min(1, Math.max(0.05, d));
  },
  async stop() {
    loop?.stop();
    loop = undefined;
  },
  async setProfile(name, team) {
    if (!loop) return { ok: false, error: { code: 'NOT_INTRODUCED', message: 'press Start first' } };
    return loop.setProfile({ name, team });
  },
};

Comlink.expose(api);
