import { open, readFile } from 'node:fs/promises';
import { assertFloat32, decodeNpy, elementCount, isNpyMagic, NPY_MAX_HEADER_BYTES, NpyError, parseNpyHeader, type NpyHeader } from '../../shared/npy';
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

export async function loadNpyData(file: UploadedFile): Promise<Float32Array> {
  try {
    return decodeNpy(new Uint8Array(await readFile(file.path)), `file "${file.field}"`).data;
  } catch (err) {
    npyToHttp(err, file.field);
  }
}
