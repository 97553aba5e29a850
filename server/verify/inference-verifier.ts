import { inferenceMismatch, perSample, splitShardInputs, type InferenceSpec } from '../../shared/inference-job';
import type { ModelGraph } from '../../shared/model-graph';
import { decodeModelPackage } from '../../shared/model-package';
import { runReference, type Tensor } from '../inference/reference-executor';
import type { BlobStore } from '../storage/blob-store';
import type { Store } from '../store/store';
import type { PanelCache } from './panel-cache';
import type { LiveLease, ResultVerifier, Verdict } from './verdict';

/** Decoded models kept for verification: a job's shards all use one. */
const MODELS_KEPT = 4;

/** An inference job's spec and model, loaded once per job and model. */
export class InferenceJobs {
  private readonly specs = new Map<string, Promise<InferenceSpec>>();
  private readonly models = new Map<string, Promise<ModelGraph>>();

  constructor(
    private readonly store: Store,
    private readonly blobs: BlobStore,
  ) {}

  spec(jobId: string): Promise<InferenceSpec> {
    let p = this.specs.get(jobId);
    if (!p) {
      p = this.store.jobSpec(jobId).then((s) => {
        if (!s) throw new Error(`inference job ${jobId} has no spec`);
        return JSON.parse(s) as InferenceSpec;
      });
      p.catch(() => this.specs.delete(jobId));
      this.specs.set(jobId, p);
      if (this.specs.size > 64) this.specs.delete(this.specs.keys().next().value!);
    }
    return p;
  }

  model(sha256: string): Promise<ModelGraph> {
    let p = this.models.get(sha256);
    if (p) {
      this.models.delete(sha256);
    } else {
      p = this.blobs.readFloat32(sha256).then((f) => decodeModelPackage(new Uint8Array(f.buffer, f.byteOffset, f.byteLength)));
      p.catch(() => this.models.delete(sha256));
    }
    this.models.set(sha256, p);
    if (this.models.size > MODELS_KEPT) this.models.delete(this.models.keys().next().value!);
    return p;
  }
}

/**
 * Verifies an inference shard by recomputing some of its samples on the
 * coordinator's CPU with the reference executor (itself checked against
 * onnxruntime) and comparing within the job's tolerance. Which samples are
 * checked is drawn after the result arrives, so a contributor cannot know
 * which ones to compute honestly: one that fakes a share f of its samples
 * is caught with probability about 1 − (1 − f)^checks per shard, and every
 * catch costs it a strike (quarantine, then ban, as for matmul).
 */
export class InferenceVerifier implements ResultVerifier {
  constructor(
    private readonly jobs: InferenceJobs,
    private readonly panels: PanelCache,
    private readonly random: () => number = Math.random,
  ) {}

  async verify(lease: LiveLease, tile: Float32Array): Promise<Verdict> {
    const spec = await this.jobs.spec(lease.job.id);
    const width = lease.cols;
    const bad = tile.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) return reject(`sample ${lease.row0 + Math.floor(bad / width)} has ${tile[bad]} in its output`);
    const graph = await this.jobs.model(lease.b.sha256);
    const sizes = spec.inputs.map(perSample);
    const inputs = splitShardInputs(await this.panels.get(lease.a.sha256, lease.a.bytes), sizes, lease.rows);
    const rows = pick(lease.rows, Math.min(spec.checksPerShard, lease.rows), this.random);
    for (const r of rows) {
      const feeds: Record<string, Tensor> = {};
      spec.inputs.forEach((inp, i) => {
        feeds[inp.name] = { dims: [1, ...inp.dims.slice(1)], data: inputs[i]!.slice(r * sizes[i]!, (r + 1) * sizes[i]!) };
      });
      const want = runReference(graph, feeds);
      let col = 0;
      for (const out of spec.outputs) {
        const size = perSample(out);
        const got = tile.subarray(r * width + col, r * width + col + size);
        const miss = inferenceMismatch(got, want[out.name]!.data, spec.tolerance);
        if (miss) return reject(`sample ${lease.row0 + r}, output "${out.name}" element ${miss.index}: got ${miss.got}, the coordinator computed ${miss.want}`);
        col += size;
      }
    }
    return { kind: 'accept' };
  }
}

const reject = (message: string): Verdict => ({ kind: 'reject', code: 'VERIFICATION_FAILED', message });

/** `count` distinct indices below `n`. */
function pick(n: number, count: number, random: () => number): number[] {
  const chosen = new Set<number>();
  while (chosen.size < count) chosen.add(Math.floor(random() * n));
  return [...chosen];
}

/** For replicated inference jobs: two contributors' shard results agree when every sample's outputs are within the job's tolerance. */
export function inferenceReplicasAgree(jobs: InferenceJobs): (lease: LiveLease, x: Float32Array, y: Float32Array) => Promise<boolean> {
  return async (lease, x, y) => {
    if (x.length !== y.length) return false;
    const spec = await jobs.spec(lease.job.id);
    const width = lease.cols;
    for (let r = 0; r < lease.rows; r++) {
      let col = 0;
      for (const out of spec.outputs) {
        const size = perSample(out);
        const at = r * width + col;
        if (inferenceMismatch(x.subarray(at, at + size), y.subarray(at, at + size), spec.tolerance)) return false;
        col += size;
      }
    }
    return true;
  };
}
