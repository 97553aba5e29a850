import { randomInt, randomUUID } from 'node:crypto';
import { perSample, type InferenceSpec } from '../../shared/inference-job';
import type { BlobStore } from '../storage/blob-store';
import type { GrantedLease, Store } from '../store/store';

/**
 * Canaries for contributors that run inference (inference-only agents
 * included): a hidden one-shard job on the same model package as the real
 * shard it goes out with, whose input is another shard's samples of the same
 * job in a new order, as many as the real shard holds. To a contributor it is
 * a shard of the job it is working on: the same model blob, a fresh input
 * blob, the same number of samples, the same `jobId` in the lease. Its known
 * answer is the coordinator's own: every one of its samples is recomputed
 * (`checksPerShard` = its samples), so a contributor that alters any sample of
 * a canary is caught, and the strike is a failed canary.
 *
 * The cost is one full shard recomputed on the coordinator's CPU per canary,
 * paid only at the canary rate the contributor's standing sets.
 */
export class InferenceCanaries {
  constructor(
    private readonly store: Store,
    private readonly blobs: BlobStore,
  ) {}

  /** Creates a canary shaped as `host` (an inference lease just granted) and returns its shard id, or undefined when the job offers no other shard to draw from. */
  async make(host: GrantedLease): Promise<string | undefined> {
    const specText = await this.store.jobSpec(host.jobId);
    if (!specText) return undefined;
    const spec = JSON.parse(specText) as InferenceSpec;
    const sources = (await this.store.jobPanels(host.jobId)).filter((p) => p.side === 'a' && p.idx !== host.rowPanel && p.bytes === host.a.bytes);
    if (sources.length === 0) return undefined;
    const source = sources[randomInt(sources.length)]!;
    const input = await this.blobs.readFloat32(source.sha256).catch(() => undefined);
    if (!input) return undefined; // its job ended meanwhile
    const sizes = spec.inputs.map(perSample);
    const rows = host.rows;
    const shuffled = shuffleSamples(input, sizes, rows);
    const panel = await this.blobs.put(new Uint8Array(shuffled.buffer));
    const id = randomUUID();
    const shardId = randomUUID();
    const withBatch = (t: InferenceSpec['inputs'][number]) => ({ ...t, dims: [rows, ...t.dims.slice(1)] });
    const canarySpec: InferenceSpec = { ...spec, batch: rows, inputs: spec.inputs.map(withBatch), outputs: spec.outputs.map(withBatch), samplesPerShard: rows, checksPerShard: rows };
    await this.store.createJob({
      id,
      type: 'inference',
      owner: null,
      priority: 0,
      verification: 'recompute',
      hidden: true,
      m: rows,
      k: host.k,
      n: host.cols,
      tileRows: rows,
      tileCols: host.cols,
      panels: [
        { side: 'a', idx: 0, ...panel },
        { side: 'b', idx: 0, sha256: host.b.sha256, bytes: host.b.bytes },
      ],
      shards: [{ id: shardId, idx: 0, rowPanel: 0, colPanel: 0, row0: 0, col0: 0, rows, cols: host.cols }],
      spec: JSON.stringify(canarySpec),
      now: Date.now(),
    });
    return shardId;
  }
}

/** A shard's input panel (each input's samples in turn) with its samples in a random order, the same order for every input. */
export function shuffleSamples(panel: Float32Array, sizes: readonly number[], rows: number): Float32Array {
  const order = Array.from({ length: rows }, (_, i) => i);
  for (let i = rows - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const out = new Float32Array(panel.length);
  let at = 0;
  for (const size of sizes) {
    for (let r = 0; r < rows; r++) out.set(panel.subarray(at + order[r]! * size, at + (order[r]! + 1) * size), at + r * size);
    at += rows * size;
  }
  return out;
}
