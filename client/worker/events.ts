import type { TuningProgress, TuningRecord } from '../gpu/autotune';
import type { AdapterInfo, DeviceLimits, ProfileReply } from '../../shared/protocol';

export type ContributorState = 'stopped' | 'tuning' | 'connecting' | 'idle' | 'working' | 'error';

export type WorkerEvent =
  | { type: 'state'; state: ContributorState; message?: string }
  | { type: 'identity'; contributorId: string }
  | { type: 'tuning'; progress: TuningProgress }
  | { type: 'tuned'; tuning: TuningRecord; cached: boolean }
  | { type: 'benchmark'; jobId: string; ok: boolean; message?: string }
  /** A model's weights were downloaded (once per browser; later jobs on the model reuse them). */
  | { type: 'model'; sha256: string; bytes: number }
  | { type: 'shard'; shardId: string; jobId: string; ok: boolean; computeMs: number; gflops: number; message?: string };

export type ProbeResult = { ok: true; adapter: AdapterInfo; limits: DeviceLimits } | { ok: false; message: string };

export interface GpuWorkerApi {
  probe(): Promise<ProbeResult>;
  start(serverUrl: string, onEvent: (e: WorkerEvent) => void, duty?: number): Promise<void>;
  /** Share of time the GPU may be busy, in (0, 1]. */
  setDuty(duty: number): Promise<void>;
  stop(): Promise<void>;
  setProfile(name: string | null, team: string | null): Promise<ProfileReply>;
}
