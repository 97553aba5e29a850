/**
 * Whether each sample of a batch is computed on its own. The network cuts a
 * batch into shards and the coordinator checks a shard by recomputing single
 * samples, so a model that mixes samples (a Softmax or a mean over the batch
 * axis, a MatMul that contracts over it) gives answers that depend on how
 * the batch was cut: every honest shard would fail its check. Such a model
 * is refused at upload, naming the node.
 *
 * The rule, checked on the shapes at batch 1 and batch 2: every value that
 * depends on an input keeps the batch on its first axis (that axis doubles,
 * the others stay, which also rules out a mean over it), and no node
 * normalizes or contracts along that axis. Linear in the graph.
 */
import { nodeLabel, type GraphNode, type ModelGraph } from '../../shared/model-graph';
import type { Shapes } from '../../shared/shape-inference';

const rankAxis = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);
const int = (v: unknown, dflt: number) => (typeof v === 'number' ? v : dflt);

/** Operators that combine values along an axis they are told; the others work element by element or only move data. */
const REDUCING_OPS = new Set(['Softmax', 'LayerNormalization', 'MatMul', 'Gemm']);

/** Why `n`, whose inputs in `dependent` carry the batch on axis 0, mixes samples; undefined when it does not. */
function mixes(n: GraphNode, dependent: Set<string>, one: Shapes, opset: number): string | undefined {
  const a = n.attributes;
  const dep = (i: number) => Boolean(n.inputs[i]) && dependent.has(n.inputs[i]!);
  const rankOf = (i: number) => one.get(n.inputs[i]!)?.length ?? 0;
  switch (n.opType) {
    case 'Softmax':
      return dep(0) && rankAxis(int(a.axis, opset >= 13 ? -1 : 1), rankOf(0)) === 0 ? 'a softmax over the batch axis' : undefined;
    case 'LayerNormalization':
      return dep(0) && rankAxis(int(a.axis, -1), rankOf(0)) === 0 ? 'a normalization over the batch axis' : undefined;
    case 'MatMul':
      if (dep(0) && rankOf(0) < 2) return 'a product that sums over the batch axis';
      if (dep(1) && rankOf(1) < 3) return 'a product that sums over the batch axis';
      return undefined;
    case 'Gemm':
      if (dep(0) && int(a.transA, 0) !== 0) return 'a product that sums over the batch axis';
      if (dep(1)) return 'a product whose B carries the batch';
      return undefined;
    default:
      return undefined;
  }
}

/** The first node that mixes samples, as a problem line; undefined when every sample is computed on its own. */
export function sampleMixing(graph: ModelGraph, one: Shapes, two: Shapes): string | undefined {
  const dependent = new Set(graph.inputs.map((v) => v.name));
  for (const n of graph.nodes) {
    if (!n.inputs.some((i) => dependent.has(i))) continue;
    const why = REDUCING_OPS.has(n.opType) ? mixes(n, dependent, one, graph.opset) : undefined;
    if (why) return `${nodeLabel(n)} mixes the samples of a batch (${why}); each sample must be computed on its own`;
    for (const o of n.outputs) {
      if (!o) continue;
      dependent.add(o);
      const s1 = one.get(o);
      const s2 = two.get(o);
      // Shapes are known for the first output only; the others are not computed (shape inference refuses them).
      if (!s1 || !s2) continue;
      const batchMajor = s1.length > 0 && s2.length === s1.length && s2[0] === 2 * s1[0]! && s1.every((d, i) => i === 0 || d === s2[i]);
      if (!batchMajor) return `${nodeLabel(n)} moves the batch off the first axis ([${s1.join(', ')}] for one sample, [${s2.join(', ')}] for two); each sample must be computed on its own`;
    }
  }
  return undefined;
}
