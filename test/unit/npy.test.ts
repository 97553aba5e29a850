import { describe, expect, it } from 'vitest';
import { decodeNpy, encodeNpy, encodeNpyHeader, NpyError, parseNpyHeader } from '../../shared/npy';

function rawNpy(header: string, data: Uint8Array, major = 1): Uint8Array {
  const prefix = major === 1 ? 10 : 12;
  const total = Math.ceil((prefix + header.length + 1) / 64) * 64;
  const hlen = total - prefix;
  const out = new Uint8Array(total + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, 0]);
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
});
