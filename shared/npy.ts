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
  const major = bytes[6]!;
  const minor = bytes[7]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // NumPy reads versions 1.0, 2.0 and 3.0 only, so a minor version is refused as it refuses it.
  if ((major !== 1 && major !== 2 && major !== 3) || minor !== 0) {
    throw new NpyError('BAD_NPY_HEADER', `unsupported .npy format version ${major}.${minor}; numpy.save writes 1.0, 2.0 or 3.0`);
  }
  let headerLen: number;
  let prefix: number;
  if (major === 1) {
    headerLen = view.getUint16(8, true);
    prefix = PREFIX_V1;
  } else {
    if (bytes.length < PREFIX_V2) throw new NpyError('TRUNCATED_NPY', '.npy header is truncated');
    headerLen = view.getUint32(8, true);
    prefix = PREFIX_V2;
  }
  if (prefix + headerLen > NPY_MAX_HEADER_BYTES) {
    throw new NpyError('BAD_NPY_HEADER', `.npy header of ${headerLen} bytes is too long`);
  }
  if (bytes.length < prefix + headerLen) throw new NpyError('TRUNCATED_NPY', '.npy header is truncated');
  const text = new TextDecoder('latin1').decode(bytes.subarray(prefix, prefix + headerLen));
  return { ...parseHeaderDict(text, major < 3), dataOffset: prefix + headerLen };
}

type HeaderValue = { kind: 'str'; value: string } | { kind: 'bool'; value: boolean } | { kind: 'tuple'; value: number[] };

const HEADER_KEYS = ['descr', 'fortran_order', 'shape'] as const;

/**
 * The header is a Python dict literal, which NumPy reads with
 * ast.literal_eval. This reads the plain subset numpy.save writes (quoted
 * strings without escapes, True/False, tuples of decimal integers, any
 * whitespace, a trailing comma) and refuses everything else, including what
 * Python would accept but read another way than a regex would: a duplicate
 * key (Python keeps the last), comments, string concatenation, hex, `(3)`
 * (an int, not a tuple). So a header accepted here means to us exactly what
 * it means to NumPy.
 */
function parseHeaderDict(text: string, python2Longs: boolean): Omit<NpyHeader, 'dataOffset'> {
  const bad = (why: string) => new NpyError('BAD_NPY_HEADER', `malformed .npy header (${why}): ${JSON.stringify(text.trim().slice(0, 200))}; save the array with numpy.save`);
  let at = 0;
  const skipSpace = () => {
    while (at < text.length && ' \t\n\r\f'.includes(text[at]!)) at++;
  };
  const peek = () => {
    skipSpace();
    return text[at];
  };
  const expect = (ch: string) => {
    if (peek() !== ch) throw bad(`expected "${ch}" at offset ${at}`);
    at++;
  };
  const readString = (): string => {
    const quote = peek();
    if (quote !== "'" && quote !== '"') throw bad(`expected a quoted string at offset ${at}`);
    const end = text.indexOf(quote, at + 1);
    const body = end < 0 ? '' : text.slice(at + 1, end);
    if (end < 0 || !/^[\x20-\x7e]*$/.test(body) || body.includes('\\')) throw bad(`unterminated or escaped string at offset ${at}`);
    at = end + 1;
    return body;
  };
  const readInt = (): number => {
    skipSpace();
    const m = /^(0|[1-9][0-9]*)(L?)/.exec(text.slice(at, at + 24));
    if (!m || (m[2] && !python2Longs)) throw bad(`expected a dimension (a decimal integer) at offset ${at}`);
    at += m[0].length;
    const n = Number(m[1]);
    if (!Number.isSafeInteger(n)) throw new NpyError('BAD_NPY_HEADER', `.npy dimension ${m[1]} is too large`);
    return n;
  };
  const readTuple = (): number[] => {
    expect('(');
    const dims: number[] = [];
    let comma = false;
    while (peek() !== ')') {
      if (dims.length > 0 && !comma) throw bad(`expected "," or ")" at offset ${at}`);
      dims.push(readInt());
      comma = peek() === ',';
      if (comma) at++;
    }
    at++;
    // Python reads "(3)" as the integer 3, not a tuple; NumPy then refuses the shape.
    if (dims.length === 1 && !comma) throw bad('a one-dimensional shape is written "(n,)"');
    return dims;
  };
  const readValue = (): HeaderValue => {
    const ch = peek();
    if (ch === "'" || ch === '"') return { kind: 'str', value: readString() };
    if (ch === '(') return { kind: 'tuple', value: readTuple() };
    for (const word of ['True', 'False'] as const) {
      if (text.startsWith(word, at) && !/[A-Za-z0-9_]/.test(text[at + word.length] ?? '')) {
        at += word.length;
        return { kind: 'bool', value: word === 'True' };
      }
    }
    throw bad(`unexpected value at offset ${at}`);
  };

  const entries = new Map<string, HeaderValue>();
  expect('{');
  let comma = true;
  while (peek() !== '}') {
    if (!comma) throw bad(`expected "," or "}" at offset ${at}`);
    const key = readString();
    if (!(HEADER_KEYS as readonly string[]).includes(key)) throw bad(`unknown key ${JSON.stringify(key)}; the keys are ${HEADER_KEYS.join(', ')}`);
    if (entries.has(key)) throw bad(`key ${JSON.stringify(key)} appears twice`);
    expect(':');
    entries.set(key, readValue());
    comma = peek() === ',';
    if (comma) at++;
  }
  at++;
  skipSpace();
  if (at !== text.length) throw bad(`unexpected text after the dictionary at offset ${at}`);
  const descr = entries.get('descr');
  const fortran = entries.get('fortran_order');
  const shape = entries.get('shape');
  if (!descr || !fortran || !shape) throw bad(`missing key ${HEADER_KEYS.filter((k) => !entries.has(k)).join(', ')}`);
  if (descr.kind !== 'str') throw bad('descr must be a string such as \'<f4\'');
  if (fortran.kind !== 'bool') throw bad('fortran_order must be True or False');
  if (shape.kind !== 'tuple') throw bad('shape must be a tuple of integers');
  return { descr: descr.value, fortranOrder: fortran.value, shape: shape.value };
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
