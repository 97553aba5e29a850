import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../../server/auth/api-keys';
import { encodeNpy } from '../../shared/npy';
import { startTestCoordinator, type TestCoordinator } from '../support/coordinator';
import { randomMatrix } from '../support/matrices';
import { openFilesUnder } from '../support/process-probe';

let coord: TestCoordinator;
let key: string;

beforeAll(async () => {
  // Eight clients at once on one key: the per-key upload cap would turn most of them into 429s.
  coord = await startTestCoordinator({ canaries: false, maxConcurrentUploads: { total: 64, perKey: 64 } });
  key = (await createApiKey(coord.store, 'fuzzer', { maxConcurrentJobs: 1e6, maxStoredBytes: 1e12, maxUploadBytes: 1 << 20, requestsPerMinute: 1e6 })).secret;
});
afterAll(async () => coord.dispose());

/** Deterministic PRNG so a failure can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

const valid = (r: number, c: number, seed: number) => encodeNpy({ shape: [r, c], data: randomMatrix(r, c, seed) });

function mutate(bytes: Uint8Array, rand: () => number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(bytes);
  switch (Math.floor(rand() * 9)) {
    case 0: // flip bytes in the header
      for (let i = 0; i < 1 + rand() * 4; i++) out[Math.floor(rand() * Math.min(out.length, 128))] = Math.floor(rand() * 256);
      return out;
    case 1: // truncate
      return out.slice(0, Math.floor(rand() * out.length));
    case 2: // append junk
      return new Uint8Array([...out, ...Array.from({ length: 1 + Math.floor(rand() * 64) }, () => Math.floor(rand() * 256))]);
    case 3: // random bytes
      return new Uint8Array(Array.from({ length: Math.floor(rand() * 300) }, () => Math.floor(rand() * 256)));
    case 4: {
      // rewrite the header text with hostile values
      const text = new TextDecoder('latin1').decode(out.subarray(0, 128));
      const hostile = ["(-1, 3)", "(99999999999, 3)", "(3,)", "()", "(1e3, 2)", "(3, 4, 5)", "(0, 0)", "(4294967297, 1)"][Math.floor(rand() * 8)]!;
      const replaced = text.replace(/\(\d+, \d+\)/, hostile).padEnd(128, ' ').slice(0, 128);
      const copy = new Uint8Array(out);
      for (let i = 0; i < 128 && i < copy.length; i++) copy[i] = replaced.charCodeAt(i) & 0xff;
      return copy;
    }
    case 5: {
      // a different dtype string
      const text = new TextDecoder('latin1').decode(out.subarray(0, 128)).replace("'<f4'", ["'<f8'", "'>f4'", "'|u1'", "'<f2'", "'O'"][Math.floor(rand() * 5)]!);
      const copy = new Uint8Array(out);
      for (let i = 0; i < text.length && i < copy.length; i++) copy[i] = text.charCodeAt(i) & 0xff;
      return copy;
    }
    case 7: {
      // a second, different value for a header key (NumPy would keep the last one)
      const text = new TextDecoder('latin1').decode(out.subarray(0, 128)).replace("'fortran_order'", "'descr': '>f4', 'fortran_order'").slice(0, 127) + '\n';
      const copy = new Uint8Array(out);
      for (let i = 0; i < 128 && i < copy.length; i++) copy[i] = text.charCodeAt(i) & 0xff;
      return copy;
    }
    case 6: // NaN in the data
      if (out.length > 130) new DataView(out.buffer).setFloat32(128, NaN, true);
      return out;
    default:
      return out; // unchanged: must be accepted
  }
}

describe('upload fuzzing', () => {
  it('answers thousands of random and mutated uploads with 4xx or 201, never 5xx, with bounded memory', async () => {
    const rand = rng(12345);
    const counts = new Map<number, number>();
    const rssBefore = process.memoryUsage().rss;
    const total = 2000;
    let next = 0;
    const worker = async () => {
      while (next < total) {
        const i = next++;
        const form = new FormData();
        const fieldRoll = rand();
        if (fieldRoll > 0.05) form.set('type', fieldRoll > 0.1 ? 'matmul' : ['', 'MATMUL', 'x'.repeat(5000), '💥'][i % 4]!);
        if (rand() > 0.03) form.set('a', new Blob([mutate(valid(4, 3, i), rand)]), 'a.npy');
        if (rand() > 0.03) form.set('b', new Blob([mutate(valid(3, 2, i + 1), rand)]), 'b.npy');
        if (rand() < 0.05) form.set('c', new Blob([valid(2, 2, i)]), 'c.npy');
        if (rand() < 0.05) form.set('priority', ['11', '-3.5', 'high', '1e9', '0x5', ' 5', ''][i % 7]!);
        // Names that are keys of Object.prototype: ordinary unknown fields, never "sent twice".
        if (rand() < 0.03) form.set(['constructor', '__proto__', 'toString'][i % 3]!, '1');
        const res = await fetch(`${coord.url}/api/v1/jobs`, { method: 'POST', body: form, headers: { authorization: `Bearer ${key}` } });
        await res.arrayBuffer();
        counts.set(res.status, (counts.get(res.status) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    const statuses = [...counts.keys()];
    expect(statuses.filter((s) => s >= 500)).toEqual([]);
    expect(statuses.every((s) => s === 201 || (s >= 400 && s < 500))).toBe(true);
    expect(counts.get(201) ?? 0).toBeGreaterThan(0);
    expect([...counts.values()].reduce((a, b) => a + b, 0)).toBe(total);
    expect((await fetch(`${coord.url}/healthz`)).status).toBe(200);
    // Nothing half-created: every accepted job is listed whole, no upload left behind.
    const listed = (await (await fetch(`${coord.url}/api/v1/jobs?limit=1000`, { headers: { authorization: `Bearer ${key}` } })).json()) as { jobs: { progress: { total: number } }[] };
    expect(listed.jobs.length).toBe(Math.min(counts.get(201) ?? 0, 1000));
    expect(listed.jobs.every((j) => j.progress.total >= 1)).toBe(true);
    expect(await readdir(join(coord.dataDir, 'uploads'))).toEqual([]);
    expect(await openFilesUnder(process.pid, join(coord.dataDir, 'uploads'))).toEqual([]);
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(300 * 1024 * 1024);
    console.log('fuzz statuses', Object.fromEntries(counts));
  }, 180_000);
});
