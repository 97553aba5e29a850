/**
 * NumPy `.npy` reading and writing for little-endian float32 tensors.
 * Format: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
 * Pure code (no DOM, no Node APIs) so the server, the worker and tests share it.
 */

export type NpyErrorCode = 'NOT_NPY' | 'BAD_NPY_HEADER' | 'UNSUPPORTED_DTYPE' | 'TRUNCATED_NPY';

export class NpyError extends Error {
  constructor(
    readonly code: NpyErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'NpyError';
  }
}

export interface NpyHeader {
  /** NumPy dtype string, e.g. `<f4`. */
  descr: string;
  fortranOrder: boolean;
  shape: number[];
  /** Byte offset of the first element. */
  dataOffset: number;
}

export interface Tensor {
  shape: number[];
  /** Elements in C (row-major) order, whatever the file's order was. */
  data: Float32Array;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const PREFIX_V1 = 10;
const PREFIX_V2 = 12;
/** Enough to hold any sane header; numpy itself caps v1 headers at 64 KiB. */
export const NPY_MAX_HEADER_BYTES = 65536 + PREFIX_V2;

export function isNpyMagic(bytes: Uint8Array): boolean {
  return bytes.length >= MAGIC.length && MAGIC.every((b, i) => bytes[i] === b);
}

/** Parses the header from the first bytes of a file (at least the whole header). */
export function parseNpyHeader(bytes: Uint8Array): NpyHeader {
  if (!isNpyMagic(bytes)) {
    throw new NpyError('NOT_NPY', 'not a NumPy .npy file (missing the \\x93NUMPY magic); save arrays with numpy.save');
  }
  if (bytes.length < PREFIX_V1) throw new NpyError('TRUNCATED_NPY', '.npy header is truncated');
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number;
  let prefix: number;
  if (major === 1) {
    headerLen = view.getUint16(8, true);
    prefix = PREFIX_V1;
  } else if (major === 2 || major === 3) {
    if (bytes.length < PREFIX_V2) throw new NpyError('TRUNCATED_NPY', '.npy header is truncated');
    headerLen = view.getUint32(8, true);
    prefix = PREFIX_V2;
  } else {
    throw new NpyError('BAD_NPY_HEADER', `unsupported .npy format version ${major}`);
  }
  if (prefix + headerLen > NPY_MAX_HEADER_BYTES) {
    throw new NpyError('BAD_NPY_HEADER', `.npy header of ${headerLen} bytes is too long`);
  }
  if (bytes.length < prefix + headerLen) throw new NpyError('TRUNCATED_NPY', '.npy header is truncated');
  const text = new TextDecoder('latin1').decode(bytes.subarray(prefix, prefix + headerLen));
  return { ...parseHeaderDict(text), dataOffset: prefix + headerLen };
}

function parseHeaderDict(text: string): Omit<NpyHeader, 'dataOffset'> {
  const descr = /['"]descr['"]\s*:\s*['"]([^'"]+)['"]/.exec(text)?.[1];
  const fortran = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(text)?.[1];
  const shapeText = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(text)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new NpyError('BAD_NPY_HEADER', `malformed .npy header: ${JSON.stringify(text.trim().slice(0, 200))}`);
  }
  const parts = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  const shape = parts.map((p) => {
    if (!/^\d+L?$/.test(p)) throw new NpyError('BAD_NPY_HEADER', `malformed .npy shape (${shapeText})`);
    const n = Number.parseInt(p, 10);
    if (!Number.isSafeInteger(n)) throw new NpyError('BAD_NPY_HEADER', `.npy dimension ${p} is too large`);
    return n;
  });
  return { descr, fortranOrder: fortran === 'True', shape };
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Throws unless the dtype is little-endian float32, with a message that says how to fix it. */
export function assertFloat32(header: NpyHeader, name = 'array'): void {
  if (header.descr === '<f4') return;
  const hint =
    header.descr === '>f4'
      ? 'it is big-endian; use arr.astype("<f4")'
      : `convert it with arr.astype(numpy.float32)`;
  throw new NpyError('UNSUPPORTED_DTYPE', `${name} has dtype ${header.descr}; only little-endian float32 (<f4) is supported: ${hint}`);
}

/** Decodes a whole `.npy` float32 file into a C-ordered tensor. */
export function decodeNpy(bytes: Uint8Array, name = 'array'): Tensor {
  const header = parseNpyHeader(bytes);
  assertFloat32(header, name);
  const count = elementCount(header.shape);
  const needed = header.dataOffset + count * 4;
  if (bytes.length < needed) {
    throw new NpyError('TRUNCATED_NPY', `${name} is truncated: shape (${header.shape.join(', ')}) needs ${needed} bytes, file has ${bytes.length}`);
  }
  if (bytes.length > needed) {
    throw new NpyError('BAD_NPY_HEADER', `${name} has ${bytes.length - needed} bytes of trailing data after its elements`);
  }
  const raw = copyFloat32(bytes, header.dataOffset, count);
  const data = header.fortranOrder && header.shape.length > 1 ? fortranToC(raw, header.shape) : raw;
  return { shape: header.shape, data };
}

function copyFloat32(bytes: Uint8Array, offset: number, count: number): Float32Array {
  const out = new Float32Array(count);
  new Uint8Array(out.buffer).set(bytes.subarray(offset, offset + count * 4));
  return out; // the host is little-endian everywhere we run (x86, ARM, every WebGPU browser)
}

/** Reorders a column-major array of any rank into row-major order. */
export function fortranToC(src: Float32Array, shape: readonly number[]): Float32Array {
  if (shape.length === 2) {
    const [rows, cols] = shape as [number, number];
    const out = new Float32Array(src.length);
    for (let j = 0; j < cols; j++) {
      const base = j * rows;
      for (let i = 0; i < rows; i++) out[i * cols + j] = src[base + i]!;
    }
    return out;
  }
  const rank = shape.length;
  const out = new Float32Array(src.length);
  const idx = new Array<number>(rank).fill(0);
  const cStrides = new Array<number>(rank).fill(1);
  for (let d = rank - 2; d >= 0; d--) cStrides[d] = cStrides[d + 1]! * shape[d + 1]!;
  for (let f = 0; f < src.length; f++) {
    let c = 0;
    for (let d = 0; d < rank; d++) c += idx[d]! * cStrides[d]!;
    out[c] = src[f]!;
    for (let d = 0; d < rank; d++) {
      if (++idx[d]! < shape[d]!) break;
      idx[d] = 0;
    }
  }
  return out;
}

/** The header bytes (format 1.0, padded to 64 bytes) for a C-ordered float32 array. */
export function encodeNpyHeader(shape: readonly number[]): Uint8Array<ArrayBuffer> {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const unpadded = PREFIX_V1 + dict.length + 1;
  const total = Math.ceil(unpadded / 64) * 64;
  const headerLen = total - PREFIX_V1;
  const out = new Uint8Array(total);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, headerLen, true);
  const text = dict.padEnd(headerLen - 1, ' ') + '\n';
  for (let i = 0; i < text.length; i++) out[PREFIX_V1 + i] = text.charCodeAt(i);
  return out;
}

export function encodeNpy(tensor: Tensor): Uint8Array<ArrayBuffer> {
  const header = encodeNpyHeader(tensor.shape);
  const out = new Uint8Array(header.length + tensor.data.byteLength);
  out.set(header, 0);
  out.set(new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength), header.length);
  return out;
}
