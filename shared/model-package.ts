/**
 * The form a model travels in to contributors: one binary blob, the graph as
 * JSON followed by every tensor's bytes (8-byte aligned, so the worker views
 * them without copying). Encoding is deterministic, so the package's sha256
 * names the model's weights: a contributor that kept a package under that
 * name never downloads it again, whichever job it comes with.
 *
 * Layout: "TSRM", u32 version, u32 header bytes, header JSON, zero padding to
 * a multiple of 8, then the tensors at the offsets the header gives.
 */
import type { AttributeValue, GraphNode, ModelGraph, TensorValue } from './model-graph';

const MAGIC = 0x4d525354; // "TSRM" little-endian
const VERSION = 1;

interface TensorEntry {
  name: string;
  dims: number[];
  dtype: 'float32' | 'int64';
  offset: number;
  length: number;
}

type PackedAttribute = number | string | number[] | { tensor: number };

interface PackageHeader {
  opset: number;
  inputs: ModelGraph['inputs'];
  outputs: ModelGraph['outputs'];
  nodes: (Omit<GraphNode, 'attributes'> & { attributes: Record<string, PackedAttribute> })[];
  tensors: TensorEntry[];
  /** Indices into `tensors` of the graph's initializers. */
  initializers: number[];
}

const align8 = (n: number) => Math.ceil(n / 8) * 8;

export function encodeModelPackage(graph: ModelGraph): Uint8Array<ArrayBuffer> {
  const tensors: TensorValue[] = [];
  const entries: TensorEntry[] = [];
  let offset = 0;
  const addTensor = (t: TensorValue): number => {
    const byteLength = t.data.byteLength;
    entries.push({ name: t.name, dims: t.dims, dtype: t.data instanceof Float32Array ? 'float32' : 'int64', offset, length: t.data.length });
    tensors.push(t);
    offset = align8(offset + byteLength);
    return entries.length - 1;
  };
  const initializers = [...graph.initializers.values()].map(addTensor);
  const nodes = graph.nodes.map((n) => ({
    ...n,
    attributes: Object.fromEntries(
      Object.entries(n.attributes).map(([k, v]): [string, PackedAttribute] => [k, typeof v === 'object' && !Array.isArray(v) ? { tensor: addTensor(v) } : v]),
    ),
  }));
  const header: PackageHeader = { opset: graph.opset, inputs: graph.inputs, outputs: graph.outputs, nodes, tensors: entries, initializers };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const dataStart = align8(12 + json.length);
  const out = new Uint8Array(dataStart + offset);
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, VERSION, true);
  view.setUint32(8, json.length, true);
  out.set(json, 12);
  tensors.forEach((t, i) => out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), dataStart + entries[i]!.offset));
  return out;
}

export class ModelPackageError extends Error {}

/** Reads a package; tensors are views into `bytes`' buffer (which must not be reused). */
export function decodeModelPackage(bytes: Uint8Array): ModelGraph {
  if (bytes.byteLength < 12) throw new ModelPackageError('model package is truncated');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC) throw new ModelPackageError('not a Tessera model package');
  if (view.getUint32(4, true) !== VERSION) throw new ModelPackageError(`model package version ${view.getUint32(4, true)} is not supported`);
  const jsonBytes = view.getUint32(8, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + jsonBytes))) as PackageHeader;
  const dataStart = align8(12 + jsonBytes);
  // Aligned views need the data at an 8-byte-aligned address of the buffer.
  const base = (bytes.byteOffset + dataStart) % 8 === 0 ? bytes : bytes.slice();
  const tensor = (i: number): TensorValue => {
    const e = header.tensors[i];
    if (!e) throw new ModelPackageError(`model package refers to tensor ${i}, which it does not have`);
    const at = base.byteOffset + dataStart + e.offset;
    const size = e.length * (e.dtype === 'float32' ? 4 : 8);
    if (dataStart + e.offset + size > base.byteLength) throw new ModelPackageError(`tensor "${e.name}" runs past the end of the package`);
    return { name: e.name, dims: e.dims, data: e.dtype === 'float32' ? new Float32Array(base.buffer, at, e.length) : new BigInt64Array(base.buffer, at, e.length) };
  };
  const initializers = new Map<string, TensorValue>();
  for (const i of header.initializers) {
    const t = tensor(i);
    initializers.set(t.name, t);
  }
  const nodes: GraphNode[] = header.nodes.map((n) => ({
    ...n,
    attributes: Object.fromEntries(
      Object.entries(n.attributes).map(([k, v]): [string, AttributeValue] => [k, typeof v === 'object' && !Array.isArray(v) ? tensor(v.tensor) : v]),
    ),
  }));
  return { opset: header.opset, inputs: header.inputs, outputs: header.outputs, initializers, nodes };
}
