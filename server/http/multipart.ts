import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import busboy from 'busboy';
import type { Request } from 'express';
import { HttpError } from './http-error';

export interface UploadedFile {
  field: string;
  filename: string;
  path: string;
  bytes: number;
}

export interface MultipartBody {
  fields: Record<string, string>;
  files: Record<string, UploadedFile>;
  /** Deletes the temporary files; call once the upload has been consumed. */
  cleanup(): Promise<void>;
}

export interface MultipartLimits {
  maxFileBytes: number;
  allowedFiles: readonly string[];
  /** Files named by the requester (an inference model's input names): any field matching `pattern`, at most `max`. */
  namedFiles?: { pattern: RegExp; max: number };
  maxFields?: number;
}

/**
 * Streams a multipart/form-data body to temporary files under `dir`. The size
 * limit is enforced while streaming, so an oversized upload is cut off at the
 * limit instead of being buffered; every failure removes what was written.
 */
export async function receiveMultipart(req: Request, dir: string, limits: MultipartLimits): Promise<MultipartBody> {
  if (!req.is('multipart/form-data')) {
    throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', 'send the job as multipart/form-data (curl -F type=matmul -F a=@a.npy -F b=@b.npy)');
  }
  const fields: Record<string, string> = {};
  const files: Record<string, UploadedFile> = {};
  const cleanup = async () => {
    await Promise.all(Object.values(files).map((f) => unlink(f.path).catch(() => undefined)));
  };
  let bb: busboy.Busboy;
  try {
    bb = busboy({
      headers: req.headers,
      limits: { fileSize: limits.maxFileBytes, files: limits.allowedFiles.length + (limits.namedFiles?.max ?? 0) + 2, fields: limits.maxFields ?? 16, fieldSize: 4096, parts: 64 },
    });
  } catch (err) {
    throw new HttpError(400, 'BAD_MULTIPART', `malformed multipart request: ${(err as Error).message}`);
  }
  const writes: Promise<void>[] = [];
  let failure: HttpError | undefined;
  let stopEarly: () => void = () => undefined;
  let stopped = false;
  const fail = (e: HttpError) => {
    failure ??= e;
  };

  bb.on('field', (name, value, info) => {
    if (info.valueTruncated) fail(new HttpError(400, 'FIELD_TOO_LONG', `form field "${name}" is too long`));
    fields[name] = value;
  });
  bb.on('file', (name, stream, info) => {
    if (stopped) {
      // The rest of the body is no longer read: a part parsed from the last chunk would never end.
      stream.resume();
      return;
    }
    if (!limits.allowedFiles.includes(name) && !limits.namedFiles?.pattern.test(name)) {
      fail(new HttpError(400, 'UNEXPECTED_FILE', `unexpected file field "${name}"; this job takes: ${limits.allowedFiles.join(', ')}`));
      stream.resume();
      return;
    }
    if (files[name]) {
      fail(new HttpError(400, 'DUPLICATE_FILE', `file field "${name}" was sent twice`));
      stream.resume();
      return;
    }
    const file: UploadedFile = { field: name, filename: info.filename ?? name, path: join(dir, `upload-${randomUUID()}`), bytes: 0 };
    files[name] = file;
    stream.on('data', (chunk: Buffer) => {
      file.bytes += chunk.length;
    });
    const sink = createWriteStream(file.path);
    stream.on('limit', () => {
      fail(new HttpError(413, 'TOO_LARGE', `file "${name}" exceeds the upload limit of ${limits.maxFileBytes} bytes`));
      // Stop reading the rest of the request: the client is told at once instead of after the whole upload.
      req.unpipe(bb);
      stopped = true;
      // Ending the sink settles the pipeline; busboy's part stream would never end now that its input is cut.
      sink.destroy(new Error('upload limit reached'));
      stopEarly();
    });
    writes.push(
      pipeline(stream, sink).catch((err: Error) => {
        fail(new HttpError(400, 'UPLOAD_FAILED', `upload of "${name}" failed: ${err.message}`));
      }),
    );
  });
  bb.on('filesLimit', () => fail(new HttpError(400, 'TOO_MANY_FILES', `too many files; this job takes: ${limits.allowedFiles.join(', ')}`)));
  bb.on('fieldsLimit', () => fail(new HttpError(400, 'TOO_MANY_FIELDS', 'too many form fields')));
  bb.on('partsLimit', () => fail(new HttpError(400, 'TOO_MANY_PARTS', 'too many multipart parts')));

  const finished = new Promise<void>((resolve, reject) => {
    stopEarly = resolve;
    bb.on('close', resolve);
    bb.on('error', (err: Error) => reject(new HttpError(400, 'BAD_MULTIPART', `malformed multipart request: ${err.message}`)));
    req.on('aborted', () => reject(new HttpError(400, 'UPLOAD_ABORTED', 'the client closed the connection during the upload')));
  });
  req.pipe(bb);
  try {
    await finished;
    await Promise.all(writes);
  } catch (err) {
    await Promise.all(writes).catch(() => undefined);
    await cleanup();
    throw err;
  }
  if (failure) {
    await cleanup();
    throw failure;
  }
  return { fields, files, cleanup };
}
