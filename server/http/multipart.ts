import { randomUUID } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
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
  /** Keyed by field name, without a prototype: a field named "constructor" or "__proto__" is just a field. */
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
  /** A client that sends nothing for this long is cut off (408), so a stalled upload cannot hold its files and slot. */
  idleMs?: number;
}

const DEFAULT_IDLE_MS = 60_000;

/** Resolves once the stream's file descriptor is closed (or it never opened one). */
function closed(sink: WriteStream): Promise<void> {
  return sink.closed ? Promise.resolve() : new Promise((resolve) => sink.once('close', () => resolve()));
}

/**
 * Streams a multipart/form-data body to temporary files under `dir`. The size
 * limit is enforced while streaming, so an oversized upload is cut off at the
 * limit instead of being buffered. Every way out (a limit, a malformed body,
 * the client going away mid-upload, a stall) destroys the file streams, waits
 * for their descriptors to close and removes what was written.
 */
export async function receiveMultipart(req: Request, dir: string, limits: MultipartLimits): Promise<MultipartBody> {
  if (!req.is('multipart/form-data')) {
    throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', 'send the job as multipart/form-data (curl -F type=matmul -F a=@a.npy -F b=@b.npy)');
  }
  const fields: Record<string, string> = Object.create(null) as Record<string, string>;
  const files: Record<string, UploadedFile> = Object.create(null) as Record<string, UploadedFile>;
  const parts: Readable[] = [];
  const sinks: WriteStream[] = [];
  const cleanup = async () => {
    for (const part of parts) part.destroy();
    for (const sink of sinks) sink.destroy();
    await Promise.all(sinks.map(closed));
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
  let stopped = false;
  const fail = (e: HttpError) => {
    failure ??= e;
  };

  let resolveFinished: () => void = () => undefined;
  let rejectFinished: (err: HttpError) => void = () => undefined;
  const finished = new Promise<void>((resolve, reject) => {
    resolveFinished = resolve;
    rejectFinished = reject;
  });
  /** Stops reading the body; busboy's part streams would never end now that their input is cut, so they and their sinks are destroyed. */
  const stop = () => {
    stopped = true;
    req.unpipe(bb);
    for (const part of parts) part.destroy();
    for (const sink of sinks) sink.destroy();
  };
  const abort = (err: HttpError) => {
    if (stopped) return;
    stop();
    rejectFinished(err);
  };

  bb.on('field', (name, value, info) => {
    if (info.valueTruncated) fail(new HttpError(400, 'FIELD_TOO_LONG', `form field "${name}" is too long`));
    if (Object.hasOwn(fields, name)) fail(new HttpError(400, 'DUPLICATE_FIELD', `form field "${name}" was sent twice; send it once`));
    fields[name] = value;
  });
  bb.on('file', (name, stream, info) => {
    if (stopped) {
      stream.destroy();
      return;
    }
    if (!limits.allowedFiles.includes(name) && !limits.namedFiles?.pattern.test(name)) {
      fail(new HttpError(400, 'UNEXPECTED_FILE', `unexpected file field "${name}"; this job takes: ${limits.allowedFiles.join(', ')}`));
      stream.resume();
      return;
    }
    if (Object.hasOwn(files, name)) {
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
    parts.push(stream);
    sinks.push(sink);
    stream.on('limit', () => {
      fail(new HttpError(413, 'TOO_LARGE', `file "${name}" exceeds the upload limit of ${limits.maxFileBytes} bytes`));
      // Stop reading the rest of the request: the client is told at once instead of after the whole upload.
      stop();
      resolveFinished();
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
  bb.on('close', () => resolveFinished());
  bb.on('error', (err: Error) => abort(new HttpError(400, 'BAD_MULTIPART', `malformed multipart request: ${err.message}`)));

  // The client going away shows up differently across Node versions ('aborted' is deprecated, 'close' now also
  // follows a complete body, the socket may close first): any of them before the body is complete is an abort.
  const gone = () => {
    if (!req.complete) abort(new HttpError(400, 'UPLOAD_ABORTED', 'the client closed the connection during the upload'));
  };
  req.on('aborted', gone);
  req.on('close', gone);
  req.on('error', gone);
  req.socket.on('close', gone);
  // The client may have left while the request waited for its checks, before these listeners existed.
  if (req.socket.destroyed || req.readableAborted) gone();
  // Progress is read from the socket's byte count rather than a 'data' listener, which would keep
  // the body flowing after it is unpiped.
  const idleMs = limits.idleMs ?? DEFAULT_IDLE_MS;
  let lastBytes = req.socket.bytesRead;
  let lastProgress = Date.now();
  const idle = setInterval(
    () => {
      if (req.socket.bytesRead !== lastBytes) {
        lastBytes = req.socket.bytesRead;
        lastProgress = Date.now();
      } else if (Date.now() - lastProgress >= idleMs) {
        abort(new HttpError(408, 'UPLOAD_STALLED', `nothing arrived for ${Math.round(idleMs / 1000)} s; the upload was cut off, send it again`));
      }
    },
    Math.max(50, idleMs / 4),
  );
  const detach = () => {
    clearInterval(idle);
    req.off('aborted', gone);
    req.off('close', gone);
    req.off('error', gone);
    req.socket.off('close', gone);
  };

  req.pipe(bb);
  try {
    await finished;
    await Promise.all(writes);
  } catch (err) {
    stop();
    await Promise.all(writes).catch(() => undefined);
    await cleanup();
    throw err;
  } finally {
    detach();
  }
  if (failure) {
    await cleanup();
    throw failure;
  }
  return { fields, files, cleanup };
}
