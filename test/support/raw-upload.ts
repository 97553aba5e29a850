import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

/**
 * A job submission over a bare socket, so a test can do what fetch cannot:
 * stop in the middle of the body, stall, or hang up right after the last
 * byte, as a hostile or broken client would.
 */

export type Part = { name: string; value: string } | { name: string; filename: string; data: Uint8Array };

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface RawUpload {
  /** Bytes of the whole request (headers and body). */
  size: number;
  /** Sends the request up to byte `end` (exclusive); resolves once the bytes are handed to the kernel. */
  sendUntil(end: number): Promise<void>;
  /** The server's answer, or undefined if the connection closed without one. */
  response: Promise<RawResponse | undefined>;
  /** Closes the connection from the client's side. */
  hangUp(): void;
}

export function multipartBody(parts: Part[]): { body: Buffer; contentType: string } {
  const boundary = `----tessera-test-${randomBytes(8).toString('hex')}`;
  const chunks: Buffer[] = [];
  for (const p of parts) {
    const disposition = 'data' in p ? `form-data; name="${p.name}"; filename="${p.filename}"` : `form-data; name="${p.name}"`;
    const type = 'data' in p ? 'Content-Type: application/octet-stream\r\n' : '';
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: ${disposition}\r\n${type}\r\n`));
    chunks.push('data' in p ? Buffer.from(p.data.buffer, p.data.byteOffset, p.data.byteLength) : Buffer.from(p.value));
    chunks.push(Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}

function parseResponse(raw: Buffer): RawResponse | undefined {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const [statusLine, ...lines] = raw.subarray(0, end).toString('latin1').split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: Number(statusLine!.split(' ')[1]), headers, body: raw.subarray(end + 4).toString('utf8') };
}

export function rawUpload(url: string, apiKey: string, parts: Part[], path = '/api/v1/jobs'): RawUpload {
  const { hostname, port } = new URL(url);
  const { body, contentType } = multipartBody(parts);
  const head = Buffer.from(
    `POST ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nAuthorization: Bearer ${apiKey}\r\nContent-Type: ${contentType}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
  );
  const request = Buffer.concat([head, body]);
  const socket: Socket = connect(Number(port), hostname);
  socket.on('error', () => undefined); // a reset after hanging up is expected
  const received: Buffer[] = [];
  socket.on('data', (d: Buffer) => received.push(d));
  const response = new Promise<RawResponse | undefined>((resolve) => socket.on('close', () => resolve(parseResponse(Buffer.concat(received)))));
  const connected = new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  let sent = 0;
  return {
    size: request.length,
    async sendUntil(end: number) {
      await connected;
      const chunk = request.subarray(sent, end);
      sent = Math.max(sent, end);
      if (chunk.length === 0 || socket.destroyed) return;
      await new Promise<void>((resolve) => socket.write(chunk, () => resolve()));
    },
    response,
    hangUp() {
      socket.destroy();
    },
  };
}
