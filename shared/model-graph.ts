/**
 * A model's graph as the network handles it, independent of the ONNX
 * protobuf it came from: the coordinator reads uploads into it
 * (server/inference/onnx-model.ts), ships it to contributors as a
 * content-addressed package (model-package.ts), and both sides infer shapes
 * and plan from it.
 */
export interface TensorValue {
  name: string;
  dims: number[];
  data: Float32Array | BigInt64Array;
}

export interface GraphValue {
  name: string;
  elemType: number;
  /** A number, or the name of a symbolic dimension (e.g. "batch"), or null when unnamed. */
  dims: (number | string | null)[];
}

export type AttributeValue = number | string | number[] | TensorValue;

export interface GraphNode {
  name: string;
  opType: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attributes: Record<string, AttributeValue>;
}

export interface ModelGraph {
  opset: number;
  inputs: GraphValue[];
  outputs: GraphValue[];
  initializers: Map<string, TensorValue>;
  nodes: GraphNode[];
}

export class ModelError extends Error {
  constructor(
    readonly code: 'NOT_ONNX' | 'UNSUPPORTED_MODEL',
    readonly problems: string[],
  ) {
    super(problems.join('; '));
  }
}

