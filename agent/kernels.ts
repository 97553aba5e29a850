import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TuningRecord } from '../client/gpu/autotune';
import type { ShaderSources } from '../client/gpu/matmul-kernel';
import { MATMUL_SHADERS } from '../shared/matmul-configs';

const SHADER_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'shaders');

/** The same WGSL files the page bundles. */
export async function readShaderSources(): Promise<ShaderSources> {
  const entries = await Promise.all(MATMUL_SHADERS.map(async (s) => [s, await readFile(join(SHADER_DIR, `matmul-${s}.wgsl`), 'utf8')] as const));
  return Object.fromEntries(entries) as Record<(typeof MATMUL_SHADERS)[number], string>;
}

/** The agent keeps its tuning in a JSON file beside its token, as the page keeps it in IndexedDB. */
export async function loadTuningFile(file: string, key: string): Promise<TuningRecord | undefined> {
  try {
    const t = JSON.parse(await readFile(file, 'utf8')) as TuningRecord;
    return t.key === key ? t : undefined;
  } catch {
    return undefined;
  }
}

export async function saveTuningFile(file: string, t: TuningRecord): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, JSON.stringify(t, null, 2) + '\n');
}
