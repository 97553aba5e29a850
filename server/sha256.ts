import { createHash } from 'node:crypto';

/** Hex SHA-256: blob names, and the only form in which API keys and contributor tokens are stored. */
export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}
