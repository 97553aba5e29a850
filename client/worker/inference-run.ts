import { interleaveOutputs, splitShardInputs } from '../../shared/inference-job';
import { decodeModelPackage } from '../../shared/model-package';
import type { BlobRef, InferenceLease } from '../../shared/protocol';
import type { InferenceOps } from '../gpu/inference-ops';
import { ModelRunner } from '../gpu/model-runner';
import type { ModelStore } from '../storage/model-store';
import { downloadBlob } from './blob-fetcher';

/** Models kept compiled and resident on the GPU at once. */
const RUNNERS_KEPT = 2;

/**
 * Runs inference leases: finds the model's package (kept in IndexedDB, else
 * downloaded once and kept), keeps a ModelRunner per model so weights and
 * plans stay on the GPU between shards, and turns the outputs into the
 * result rows the coordinator assembles.
 */
export class InferenceRunner {
  private readonly runners = new Map<string, Promise<ModelRunner>>();

  constructor(
    private readonly ops: InferenceOps,
    private readonly models: ModelStore,
    private readonly serverUrl: string,
    private readonly maxBindingBytes: number,
    /** Called when a package had to come over the network (the page counts them). */
    private readonly onDownload: (ref: BlobRef) => void = () => undefined,
  ) {}

  /** Package hashes this contributor keeps, for hello. */
  held(): Promise<string[]> {
    return this.models.list().catch(() => []);
  }

  /** Starts loading the lease's model early, while an earlier shard computes. */
  prefetch(ref: BlobRef): void {
    this.runner(ref).catch(() => undefined);
  }

  private runner(ref: BlobRef): Promise<ModelRunner> {
    let r = this.runners.get(ref.sha256);
    if (r) {
      this.runners.delete(ref.sha256);
    } else {
      r = this.load(ref);
      r.catch(() => this.runners.delete(ref.sha256));
    }
    this.runners.set(ref.sha256, r);
    for (const [sha, old] of this.runners) {
      if (this.runners.size <= RUNNERS_KEPT) break;
      this.runners.delete(sha);
      void old.then((x) => x.dispose()).catch(() => undefined);
    }
    return r;
  }

  private async load(ref: BlobRef): Promise<ModelRunner> {
    let bytes = await this.models.get(ref.sha256).catch(() => undefined);
    if (!bytes) {
      bytes = await downloadBlob(this.serverUrl, ref);
      this.onDownload(ref);
      await this.models.put(ref.sha256, bytes).catch(() => undefined); // private browsing: download again next time
    }
    return new ModelRunner(this.ops, decodeModelPackage(new Uint8Array(bytes)), this.maxBindingBytes);
  }

  /** Computes the lease's samples; returns the result rows and the FLOPs they took. */
  async run(lease: InferenceLease, input: ArrayBuffer): Promise<{ rows: Float32Array; flops: number }> {
    const runner = await this.runner(lease.model);
    const sizes = runner.graph.inputs.map((v) => (v.dims.slice(1) as number[]).reduce((a, b) => a * b, 1));
    const outputs = await runner.run(lease.rows, splitShardInputs(new Float32Array(input), sizes, lease.rows));
    const plan = await runner.describe(lease.rows);
    const rows = interleaveOutputs(outputs, plan.outputs.map((o) => o.dims.slice(1).reduce((a, b) => a * b, 1)), lease.rows);
    if (rows.length !== lease.rows * lease.outputsPerSample) throw new Error(`the model produced ${rows.length / lease.rows} values per sample; the lease expects ${lease.outputsPerSample}`);
    return { rows, flops: plan.flops };
  }
}
