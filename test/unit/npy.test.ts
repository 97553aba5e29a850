import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NpyReader, READ_CHUNK_BYTES } from '../../server/jobs/npy-upload';
import { decodeNpy, encodeNpy, encodeNpyHeader, fortranToC, NpyError, parseNpyHeader } from '../../shared/npy';

function rawNpy(header: string, data: Uint8Array, major = 1, minor = 0): Uint8Array {
  const prefix = major === 1 ? 10 : 12;
  const total = Math.ceil((prefix + header.length + 1) / 64) * 64;
  const hlen = total - prefix;
  const out = new Uint8Array(total + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, minor]);
  const view = new DataView(out.buffer);
  if (major === 1) view.setUint16(8, hlen, true);
  else view.setUint32(8, hlen, true);
  const text = header.padEnd(hlen - 1, ' ') + '\n';
  for (let i = 0; i < text.length; i++) out[prefix + i] = text.charCodeAt(i);
  out.set(data, total);
  return out;
}

const f32 = (...xs: number[]) => new Uint8Array(new Float32Array(xs).buffer);

describe('.npy', () => {
  it('round-trips a C-ordered float32 matrix', () => {
    const data = new Float32Array([1, 2, 3, 4, 5, 6]);
    const bytes = encodeNpy({ shape: [2, 3], data });
    expect(bytes.length % 64).toBe(24 % 64 === 0 ? 0 : bytes.length % 64); // header padded to 64
    expect(encodeNpyHeader([2, 3]).length % 64).toBe(0);
    const back = decodeNpy(bytes);
    expect(back.shape).toEqual([2, 3]);
    expect(Array.from(back.data)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('round-trips 1-D and 3-D shapes', () => {
    expect(decodeNpy(encodeNpy({ shape: [4], data: new Float32Array([1, 2, 3, 4]) })).shape).toEqual([4]);
    expect(decodeNpy(encodeNpy({ shape: [2, 1, 2], data: new Float32Array(4) })).shape).toEqual([2, 1, 2]);
  });

  it('reads Fortran order into C order', () => {
    // [[1, 2, 3], [4, 5, 6]] stored column by column.
    const bytes = rawNpy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", f32(1, 4, 2, 5, 3, 6));
    const t = decodeNpy(bytes);
    expect(t.shape).toEqual([2, 3]);
    expect(Array.from(t.data)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('reads Fortran order for rank 3', () => {
    // shape (2, 2, 2), element (i, j, k) = 100i + 10j + k, stored with i fastest.
    const fortran: number[] = [];
    for (let k = 0; k < 2; k++) for (let j = 0; j < 2; j++) for (let i = 0; i < 2; i++) fortran.push(100 * i + 10 * j + k);
    const t = decodeNpy(rawNpy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2, 2), }", f32(...fortran)));
    expect(Array.from(t.data)).toEqual([0, 1, 10, 11, 100, 101, 110, 111]);
  });

  it('reads format version 2 headers', () => {
    const t = decodeNpy(rawNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }", f32(7, 8), 2));
    expect(Array.from(t.data)).toEqual([7, 8]);
  });

  const expectCode = (fn: () => unknown, code: string, text?: RegExp) => {
    try {
      fn();
    } catch (err) {
      expect(err).toBeInstanceOf(NpyError);
      expect((err as NpyError).code).toBe(code);
      if (text) expect((err as Error).message).toMatch(text);
      return;
    }
    throw new Error('expected an NpyError');
  };

  it('rejects bad files with a code and a message that says what to fix', () => {
    expectCode(() => decodeNpy(new TextEncoder().encode('a,b\n1,2\n')), 'NOT_NPY', /numpy\.save/);
    expectCode(() => decodeNpy(rawNpy("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", new Uint8Array(8))), 'UNSUPPORTED_DTYPE', /astype/);
    expectCode(() => decodeNpy(rawNpy("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", new Uint8Array(4))), 'UNSUPPORTED_DTYPE', /big-endian/);
    expectCode(() => decodeNpy(rawNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", f32(1, 2))), 'TRUNCATED_NPY');
    expectCode(() => decodeNpy(rawNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", f32(1, 2))), 'BAD_NPY_HEADER', /trailing/);
    expectCode(() => decodeNpy(rawNpy("{'descr': '<f4', 'shape': (1,), }", f32(1))), 'BAD_NPY_HEADER');
    expectCode(() => decodeNpy(rawNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", f32(1))), 'BAD_NPY_HEADER');
    expectCode(() => parseNpyHeader(new Uint8Array([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 9, 0, 0, 0])), 'BAD_NPY_HEADER', /version/);
    expectCode(() => parseNpyHeader(new Uint8Array([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, 200, 0])), 'TRUNCATED_NPY');
  });

  // What NumPy 2.4's np.load does with each header (checked with numpy when these cases were written):
  // the ones it accepts are read here to the same array; the others are refused here too. Cases NumPy
  // reads but that are not plain numpy.save output (comments, hex, a duplicate key, where it keeps the
  // last) are refused here, never read another way.
  const header = (dict: string) => parseNpyHeader(rawNpy(dict, new Uint8Array(0)));
  const C6 = { descr: '<f4', fortranOrder: false, shape: [6] };

  it('reads headers as NumPy reads them: quotes, spacing, trailing commas, key order, Python 2 longs', () => {
    for (const dict of [
      "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }",
      '{"descr": "<f4", "fortran_order": False, "shape": (6,)}',
      "{'shape':(6,),'fortran_order':False,'descr':'<f4'}",
      "{'descr':\t'<f4',\r\n 'fortran_order' : False ,\n'shape' : ( 6 , ) , }",
      "  {'descr': '<f4', 'fortran_order': False, 'shape': (6L,)}",
    ]) {
      expect(header(dict)).toMatchObject(C6);
    }
    expect(header("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3,)}")).toMatchObject({ fortranOrder: true, shape: [2, 3] });
    expect(header("{'descr': '<f4', 'fortran_order': False, 'shape': ()}")).toMatchObject({ shape: [] });
    expect(parseNpyHeader(rawNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (6,)}", new Uint8Array(0), 3))).toMatchObject(C6);
  });

  it('refuses headers NumPy refuses or would read differently, naming the problem', () => {
    const refused: [string, RegExp][] = [
      ["{'descr': '<f4', 'descr': '>f4', 'fortran_order': False, 'shape': (6,)}", /"descr" appears twice/],
      ["{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'shape': (2, 3)}", /"shape" appears twice/],
      ["{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'x': 1}", /unknown key "x"/],
      ["{'descr': '<f4', 'shape': (6,)}", /missing key fortran_order/],
      ["{'descr': '<f4', 'fortran_order': False, 'shape': (6)}", /\(n,\)/],
      ["{'descr': '<f4', 'fortran_order': False, 'shape': [6]}", /unexpected value/],
      ["{'descr': '<f4', 'fortran_order': False, 'shape': (True, 6)}", /dimension/],
      ["{'descr': '<f4', 'fortran_order': False, 'shape': (0x6,)}", /expected "," or "\)"/],
      ["{'descr': '<f4', 'fortran_order': False, 'shape': (06,)}", /expected "," or "\)"/],
      ["{'descr': '<f4', 'fortran_order': False, 'shape': (-6,)}", /dimension/],
      ["{'descr': '<f4', 'fortran_order': False, 'shape': (6.0,)}", /expected "," or "\)"/],
      ["{'descr': '<f4', 'fortran_order': 0, 'shape': (6,)}", /unexpected value/],
      ["{'descr': '<f4', 'fortran_order': Falsey, 'shape': (6,)}", /unexpected value/],
      ["{'descr': '<' 'f4', 'fortran_order': False, 'shape': (6,)}", /expected "," or "}"/],
      ["{'descr': '<f4', # comment\n 'fortran_order': False, 'shape': (6,)}", /quoted string/],
      ["{'descr': '<f4', 'fortran_order': False, 'shape': (6,)} junk", /after the dictionary/],
      ["{'descr': '<f4', 'fortran_order': False, 'shape': (6,),,}", /quoted string/],
      ["{'descr': '\\x3cf4', 'fortran_order': False, 'shape': (6,)}", /escaped/],
      ["{'descr': ('<f4'), 'fortran_order': False, 'shape': (6,)}", /dimension/],
      ["{'descr': '<f4', 'fortran_order': False, 'shape': (6,)}\0", /after the dictionary/],
      ["{'descr': '<f4', 'fortran_order': False, 'shape': (6,)", /expected "," or "}"/],
    ];
    for (const [dict, why] of refused) expectCode(() => header(dict), 'BAD_NPY_HEADER', why);
    // Python 3 files carry no 'L' suffix: only versions 1.0 and 2.0 may have been written by Python 2.
    expectCode(() => parseNpyHeader(rawNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (6L,)}", new Uint8Array(0), 3)), 'BAD_NPY_HEADER');
    // NumPy reads versions 1.0, 2.0 and 3.0, no minor versions.
    expectCode(() => parseNpyHeader(rawNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (6,)}", new Uint8Array(0), 1, 1)), 'BAD_NPY_HEADER', /version 1\.1/);
  });
});

describe('NpyReader: uploads read in place, in bounded chunks', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'npy-reader-'));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  /** Writes `values` (C order, `shape`) to a file, in Fortran order when asked, and opens it as an upload. */
  async function withUpload<T>(shape: number[], values: Float32Array, fortran: boolean, fn: (r: NpyReader) => Promise<T>): Promise<T> {
    let stored = values;
    if (fortran && shape.length > 1) {
      // Element (i0, i1, …) goes to position i0 + s0·(i1 + s1·(…)).
      const transposed = new Float32Array(values.length);
      const cIndex = (idx: number[]) => idx.reduce((acc, v, d) => acc * shape[d]! + v, 0);
      const idx = new Array<number>(shape.length).fill(0);
      for (let f = 0; f < values.length; f++) {
        transposed[f] = values[cIndex(idx)]!;
        for (let d = 0; d < shape.length; d++) {
          if (++idx[d]! < shape[d]!) break;
          idx[d] = 0;
        }
      }
      stored = transposed;
      expect(sameFloats(fortranToC(stored, shape), values)).toBe(true);
    }
    const dict = `{'descr': '<f4', 'fortran_order': ${fortran ? 'True' : 'False'}, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
    const bytes = rawNpy(dict, new Uint8Array(stored.buffer));
    const path = join(dir, `u-${Math.random().toString(36).slice(2)}`);
    await writeFile(path, bytes);
    const file = { field: 'a', filename: 'a.npy', path, bytes: bytes.length };
    return NpyReader.with(file, parseNpyHeader(bytes), fn);
  }

  /** Byte equality: toEqual on arrays of a million elements takes seconds. */
  const sameFloats = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
  const ramp = (n: number) => Float32Array.from({ length: n }, (_, i) => (i % 1000) - 500 + i / 1e6);

  it('reads any block of a C- or Fortran-ordered matrix, including rows longer than one read', async () => {
    const chunk = READ_CHUNK_BYTES / 4;
    for (const [rows, cols] of [
      [7, 5],
      [300, 1000], // several rows per read
      [3, chunk + 17], // one row spans more than a read
    ] as const) {
      const values = ramp(rows * cols);
      for (const fortran of [false, true]) {
        await withUpload([rows, cols], values, fortran, async (r) => {
          for (const [r0, nr, c0, nc] of [
            [0, rows, 0, cols],
            [1, rows - 2, 0, cols],
            [rows - 1, 1, cols - 3, 3],
            [0, rows, 2, Math.min(cols - 2, 64)],
          ] as const) {
            const out = new Float32Array(nr * nc);
            await r.readBlock(r0, nr, c0, nc, out);
            const want = new Float32Array(nr * nc);
            for (let i = 0; i < nr; i++) for (let j = 0; j < nc; j++) want[i * nc + j] = values[(r0 + i) * cols + c0 + j]!;
            expect(sameFloats(out, want), `${rows}×${cols} ${fortran ? 'F' : 'C'} block ${[r0, nr, c0, nc].join(',')}`).toBe(true);
          }
        });
      }
    }
  });

  it('reads whole samples of a rank-3 array in either order', async () => {
    const shape = [5, 3, 4];
    const values = ramp(60);
    for (const fortran of [false, true]) {
      await withUpload(shape, values, fortran, async (r) => {
        const out = new Float32Array(2 * 12);
        await r.readBlock(2, 2, 0, 12, out);
        expect(out).toEqual(values.subarray(24, 48));
      });
    }
  });

  it('scans for the largest magnitude and the first NaN or Infinity, with its position', async () => {
    const values = ramp(4 * 6);
    values[13] = -7777;
    expect(await withUpload([4, 6], values, false, (r) => r.scan())).toEqual({ maxAbs: 7777 });
    for (const bad of [NaN, -Infinity]) {
      const v = ramp(4 * 6);
      v[3 * 6 + 2] = bad; // row 3, column 2
      for (const fortran of [false, true]) {
        const scan = await withUpload([4, 6], v, fortran, (r) => r.scan());
        expect(scan.nonFinite?.index).toEqual([3, 2]);
        expect(scan.nonFinite?.value).toBe(bad);
      }
    }
  });
});

