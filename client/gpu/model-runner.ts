/**
 * Runs a model on the GPU from its plan (shared/inference-plan.ts). Per
 * model, the weights are uploaded once and stay resident; per batch size, a
 * plan is built once with its buffers, uniforms and bind groups, so running a
 * shard is: write the inputs, one command buffer of launches, read the
 * outputs. Nothing is allocated per shard.
 */
import type { ModelGraph } from '../../shared/model-graph';
import { planInference, type InferencePlan } from '../../shared/inference-plan';
import { submitLaunches, type InferenceOps, type Launch } from './inference-ops';
import { readBuffer } from './matmul-kernel';

interface BuiltPlan {
  plan: InferencePlan;
  buffers: GPUBuffer[];
  /** Buffers this plan owns (slots, inputs, outputs, uniforms); weights belong to the model. */
  owned: GPUBuffer[];
  launches: Launch[];
}

/** Plans kept per model: shard sizes of one job take one or two values (the last shard is shorter). */
const PLANS_KEPT = 3;

export class ModelRunner {
  private readonly weights = new Map<Float32Array, GPUBuffer>();
  private readonly plans = new Map<number, BuiltPlan>();
  private readonly dummy: GPUBuffer;

  constructor(
    private readonly ops: InferenceOps,
    readonly graph: ModelGraph,
    /** The device's storage binding limit: a plan whose buffers exceed it is refused before it runs. */
    private readonly maxBindingBytes: number,
  ) {
    this.dummy = ops.storage(4);
  }

  private weight(data: Float32Array): GPUBuffer {
    let b = this.weights.get(data);
    if (!b) {
      b = this.ops.storage(data.length, data, 'weight');
      this.weights.set(data, b);
    }
    return b;
  }

  private async build(batch: number): Promise<BuiltPlan> {
    const plan = planInference(this.graph, batch);
    if (plan.largestBufferBytes > this.maxBindingBytes) {
      throw new RangeError(`a batch of ${batch} needs a ${plan.largestBufferBytes}-byte buffer; this GPU binds at most ${this.maxBindingBytes}`);
    }
    const device = this.ops.device;
    const owned: GPUBuffer[] = [];
    const slots = plan.slotElements.map((n) => {
      const b = this.ops.storage(n, undefined, 'slot');
      owned.push(b);
      return b;
    });
    const buffers = plan.buffers.map((b) => {
      if (b.role === 'weight') return this.weight(b.data!);
      if (b.role === 'temp') return slots[b.slot!]!;
      const own = this.ops.storage(b.elements, undefined, b.name);
      owned.push(own);
      return own;
    });
    device.pushErrorScope('validation');
    const launches = plan.steps.map((step) => {
      const e = this.ops.encodeStep(step, (id) => buffers[id]!, this.dummy);
      owned.push(e.uniform);
      return e;
    });
    const error = await device.popErrorScope();
    if (error) {
      for (const b of owned) b.destroy();
      throw new Error(`model plan for batch ${batch}: ${error.message}`);
    }
    return { plan, buffers, owned, launches };
  }

  private async planFor(batch: number): Promise<BuiltPlan> {
    const hit = this.plans.get(batch);
    if (hit) {
      this.plans.delete(batch);
      this.plans.set(batch, hit);
      return hit;
    }
    const built = await this.build(batch);
    this.plans.set(batch, built);
    for (const [b, old] of this.plans) {
      if (this.plans.size <= PLANS_KEPT) break;
      this.plans.delete(b);
      for (const buf of old.owned) buf.destroy();
    }
    return built;
  }

  /** The plan the runner uses for `batch` samples (for its FLOP count and memory). */
  async describe(batch: number): Promise<InferencePlan> {
    return (await this.planFor(batch)).plan;
  }

  /**
   * Runs `batch` samples. `inputs` holds each graph input's values for the
   * whole batch, in graph order; the result holds each output's, in graph order.
   */
  async run(batch: number, inputs: Float32Array[]): Promise<Float32Array[]> {
    const built = await this.planFor(batch);
    const device = this.ops.device;
    built.plan.inputs.forEach((inp, i) => {
      const data = inputs[i];
      const want = built.plan.buffers[inp.buffer]!.elements;
      if (!data || data.length !== want) throw new RangeError(`input "${inp.name}" needs ${want} values for a batch of ${batch}, got ${data?.length ?? 0}`);
      device.queue.writeBuffer(built.buffers[inp.buffer]!, 0, data.buffer, data.byteOffset, data.byteLength);
    });
    submitLaunches(device, built.launches);
    return Promise.all(built.plan.outputs.map((o) => readBuffer(device, built.buffers[o.buffer]!, built.plan.buffers[o.buffer]!.elements * 4)));
  }

  /**
   * Runs `batch` samples one launch at a time, waiting for the GPU after each,
   * and returns each step's wall time: where a model's time goes (the bench).
   */
  async profile(batch: number, inputs: Float32Array[]): Promise<{ kind: string; node: string; ms: number }[]> {
    await this.run(batch, inputs);
    const built = await this.planFor(batch);
    const device = this.ops.device;
    const out: { kind: string; node: string; ms: number }[] = [];
    for (const [i, l] of built.launches.entries()) {
      const t0 = performance.now();
      submitLaunches(device, [l]);
      await device.queue.onSubmittedWorkDone();
      const step = built.plan.steps[i]!;
      out.push({ kind: step.kind === 'unary' || step.kind === 'binary' ? `${step.kind}:${step.op}` : step.kind, node: step.node, ms: performance.now() - t0 });
    }
    return out;
  }

  dispose(): void {
    for (const p of this.plans.values()) for (const b of p.owned) b.destroy();
    this.plans.clear();
    for (const b of this.weights.values()) b.destroy();
    this.weights.clear();
    this.dummy.destroy();
  }
}
