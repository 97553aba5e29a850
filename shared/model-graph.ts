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

/**
 * Why a model is refused: not ONNX at all; ONNX that breaks the standard
 * (a perm that is not a permutation, a value read before it is produced,
 * a negative dimension); valid ONNX the network cannot run; or a model over
 * one of the limits in model-limits.ts.
 */
export type ModelErrorCode = 'NOT_ONNX' | 'INVALID_MODEL' | 'UNSUPPORTED_MODEL' | 'MODEL_TOO_LARGE';

export class ModelError extends Error {
  constructor(
    readonly code: ModelErrorCode,
    readonly problems: string[],
  ) {
    super(problems.join('; '));
  }
}

/** A name from the model as messages quote it: requesters choose names, so a long one is cut. */
export function quoteName(name: string, max = 64): string {
  const s = JSON.stringify(name);
  return s.length <= max + 2 ? s : `${s.slice(0, max)}…"`;
}

/** How a node is named in messages: `node fc1 (Gemm)`. */
export const nodeLabel = (n: Pick<GraphNode, 'name' | 'opType'>): string => `node ${clip(n.name)} (${clip(n.opType, 32)})`;

/** Cuts a requester-chosen string for a message. */
export function clip(text: string, max = 64): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

const PRECEDENCE: ModelErrorCode[] = ['NOT_ONNX', 'INVALID_MODEL', 'MODEL_TOO_LARGE', 'UNSUPPORTED_MODEL'];

/** At most this many problems are listed in one refusal; the rest are counted. */
export const MAX_LISTED_PROBLEMS = 12;

/**
 * Problems found while reading or checking a model, collected so that one
 * refusal names every blocker. The refusal's code is the gravest kind seen.
 */
export class ModelProblems {
  private readonly list: { code: ModelErrorCode; text: string }[] = [];

  add(code: ModelErrorCode, text: string): void {
    this.list.push({ code, text });
  }

  get size(): number {
    return this.list.length;
  }

  /** Throws a ModelError listing the problems (at most MAX_LISTED_PROBLEMS, then a count) when there are any. */
  throwIfAny(): void {
    if (this.list.length === 0) return;
    const code = PRECEDENCE.find((c) => this.list.some((p) => p.code === c))!;
    const texts = this.list.slice(0, MAX_LISTED_PROBLEMS).map((p) => p.text);
    if (this.list.length > MAX_LISTED_PROBLEMS) texts.push(`and ${this.list.length - MAX_LISTED_PROBLEMS} more problems`);
    throw new ModelError(code, texts);
  }
}
