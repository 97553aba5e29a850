import { open, type FileHandle } from 'node:fs/promises';
import { assertFloat32, elementCount, fortranToC, isNpyMagic, NPY_MAX_HEADER_BYTES, NpyError, parseNpyHeader, type NpyHeader } from '../../shared/npy';
import { HttpError } from '../http/http-error';
import type { UploadedFile } from '../http/multipart';

/** Checks and reads uploaded .npy files, turning every problem into an HTTP error that names the file. */
async function readHead(path: string): Promise<Uint8Array> {
  const handle = await open(path, 'r');
  try {
    const buf = new Uint8Array(NPY_MAX_HEADER_BYTES);
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

export function npyToHttp(err: unknown, field: string): never {
  if (err instanceof NpyError) {
    const status = err.code === 'UNSUPPORTED_DTYPE' ? 415 : 400;
    throw new HttpError(status, err.code, `file "${field}": ${err.message}`);
  }
  throw err;
}

/**
 * Validates an upload from its header alone, before any of its data is read:
 * a float32 .npy whose size matches what its header promises.
 */
export async function inspectNpy(file: UploadedFile): Promise<NpyHeader> {
  const head = await readHead(file.path);
  if (!isNpyMagic(head)) {
    throw new HttpError(400, 'NOT_NPY', `file "${file.field}" is not a NumPy .npy file; save it with numpy.save("${file.field}.npy", arr.astype(numpy.float32))`);
  }
  let header: NpyHeader;
  try {
    header = parseNpyHeader(head);
    assertFloat32(header, `file "${file.field}"`);
  } catch (err) {
    npyToHttp(err, file.field);
  }
  const expected = header.dataOffset + elementCount(header.shape) * 4;
  if (file.bytes !== expected) {
    throw new HttpError(400, 'TRUNCATED_NPY', `file "${file.field}" has ${file.bytes} bytes but its header promises ${expected} (shape (${header.shape.join(', ')}), float32)`);
  }
  return header;
}

/** Bytes read from an upload at a time: what an upload costs in memory besides the panel being cut. */
export const READ_CHUNK_BYTES = 1 << 20;
const CHUNK_ELEMS = READ_CHUNK_BYTES / 4;

export interface NpyScan {
  /** The largest magnitude among the elements (0 for an all-zero array). */
  maxAbs: number;
  /** The first element (in file order) that is NaN or ±Infinity, with its index per dimension. */
  nonFinite?: { index: number[]; value: number };
}

/**
 * An uploaded float32 .npy read in place: one pass to check it, then the
 * blocks each panel needs, by positional reads of at most READ_CHUNK_BYTES,
 * so that memory stays bounded whatever the file's size. The array is seen
 * as a matrix: rows along its first dimension, the other dimensions
 * flattened (in C order) into columns. Fortran-ordered files are read as
 * the transposed matrix they are on disk.
 */
export class NpyReader {
  readonly rows: number;
  readonly cols: number;
  private readonly scratch = new Float32Array(CHUNK_ELEMS);

  private constructor(
    private readonly handle: FileHandle,
    private readonly header: NpyHeader,
  ) {
    this.rows = header.shape[0] ?? 1;
    this.cols = elementCount(header.shape.slice(1));
  }

  /** Opens the file, runs `fn` with a reader on it and closes it, whatever happens. */
  static async with<T>(file: UploadedFile, header: NpyHeader, fn: (reader: NpyReader) => Promise<T>): Promise<T> {
    const handle = await open(file.path, 'r');
    try {
      return await fn(new NpyReader(handle, header));
    } finally {
      await handle.close();
    }
  }

  private get fortran(): boolean {
    return this.header.fortranOrder && this.header.shape.length > 1;
  }

  /** Reads `count` elements starting at element `first` of the data into `dest` (from its start). */
  private async readElements(first: number, count: number, dest: Float32Array): Promise<void> {
    const bytes = new Uint8Array(dest.buffer, dest.byteOffset, count * 4);
    let done = 0;
    while (done < bytes.length) {
      const { bytesRead } = await this.handle.read(bytes, done, bytes.length - done, this.header.dataOffset + first * 4 + done);
      // The size was checked against the header, so a short file here means it changed under us.
      if (bytesRead === 0) throw new Error('upload file ended early');
      done += bytesRead;
    }
  }

  /**
   * Visits elements [seg0, seg0+segLen) of stored rows [row0, row0+rows) of
   * the data seen as stored rows of `width` elements, in bounded reads:
   * several whole rows per read when they fit, else a piece of one row.
   */
  private async visitStored(row0: number, rows: number, width: number, seg0: number, segLen: number, visit: (row: number, at: number, values: Float32Array) => void): Promise<void> {
    if (width <= CHUNK_ELEMS) {
      const batch = Math.floor(CHUNK_ELEMS / width);
      for (let r = row0; r < row0 + rows; r += batch) {
        const n = Math.min(batch, row0 + rows - r);
        await this.readElements(r * width, n * width, this.scratch);
        for (let i = 0; i < n; i++) visit(r + i, 0, this.scratch.subarray(i * width + seg0, i * width + seg0 + segLen));
      }
      return;
    }
    for (let r = row0; r < row0 + rows; r++) {
      for (let at = 0; at < segLen; at += CHUNK_ELEMS) {
        const n = Math.min(CHUNK_ELEMS, segLen - at);
        await this.readElements(r * width + seg0 + at, n, this.scratch);
        visit(r, at, this.scratch.subarray(0, n));
      }
    }
  }

  /** One pass over every element: the largest magnitude and the first non-finite value. */
  async scan(): Promise<NpyScan> {
    const total = elementCount(this.header.shape);
    let maxAbs = 0;
    for (let first = 0; first < total; first += CHUNK_ELEMS) {
      const n = Math.min(CHUNK_ELEMS, total - first);
      await this.readElements(first, n, this.scratch);
      const values = this.scratch;
      for (let i = 0; i < n; i++) {
        const v = values[i]!;
        const abs = v < 0 ? -v : v;
        // Written so that NaN (which compares false) is caught by the same test as Infinity.
        if (!(abs < Infinity)) return { maxAbs, nonFinite: { index: this.indexOf(first + i), value: v } };
        if (abs > maxAbs) maxAbs = abs;
      }
    }
    return { maxAbs };
  }

  /** The index per dimension of the element stored at position `pos` of the data. */
  private indexOf(pos: number): number[] {
    const shape = this.header.shape;
    const index = new Array<number>(shape.length).fill(0);
    const order = this.header.fortranOrder ? shape.map((_, d) => d) : shape.map((_, d) => shape.length - 1 - d);
    for (const d of order) {
      index[d] = pos % shape[d]!;
      pos = Math.floor(pos / shape[d]!);
    }
    return index;
  }

  /**
   * Writes rows [row0, row0+rows) × columns [col0, col0+cols) of the matrix
   * view, row-major, into `out` (rows·cols elements). A Fortran-ordered file
   * of rank above 2 can only be read in whole rows (its columns are not
   * stored in C order).
   */
  async readBlock(row0: number, rows: number, col0: number, cols: number, out: Float32Array): Promise<void> {
    if (out.length < rows * cols) throw new RangeError('readBlock: output too small');
    if (!this.fortran) {
      await this.visitStored(row0, rows, this.cols, col0, cols, (r, at, values) => out.set(values, (r - row0) * cols + at));
      return;
    }
    const sampleShape = this.header.shape.slice(1);
    if (sampleShape.length > 1 && (col0 !== 0 || cols !== this.cols)) throw new RangeError('readBlock: a Fortran-ordered array of rank > 2 is read in whole rows');
    // On disk: `this.cols` stored rows (one per column of the matrix view) of `this.rows` elements.
    await this.visitStored(col0, cols, this.rows, row0, rows, (c, at, values) => {
      const j = c - col0;
      for (let i = 0; i < values.length; i++) out[(at + i) * cols + j] = values[i]!;
    });
    // Each row now holds one sample with its own dimensions in Fortran order.
    if (sampleShape.length > 1) {
      for (let i = 0; i < rows; i++) out.set(fortranToC(out.subarray(i * cols, (i + 1) * cols), sampleShape), i * cols);
    }
  }
}
