import { readdir, readFile, readlink, writeFile } from 'node:fs/promises';

/**
 * What a running process holds, read from Linux's /proc: its resident memory
 * and its open file descriptors. Tests use it on a coordinator started as a
 * child process (or on themselves) to show that uploads leave nothing behind.
 */

async function statusField(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1];
  if (kb === undefined) throw new Error(`/proc/${pid}/status has no ${field}`);
  return Number(kb) * 1024;
}

/** Resident memory now, in bytes. */
export const rssBytes = (pid: number) => statusField(pid, 'VmRSS');

/** Resident memory at its highest since the process started or since resetPeakRss, in bytes. */
export const peakRssBytes = (pid: number) => statusField(pid, 'VmHWM');

/** Starts VmHWM again from the current RSS (Linux clear_refs "5"); false where the kernel does not allow it. */
export async function resetPeakRss(pid: number): Promise<boolean> {
  try {
    await writeFile(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/**
 * Samples RSS every `everyMs` until stopped and returns the highest value:
 * the fallback where VmHWM cannot be reset, and a cross-check where it can.
 */
export function sampleRss(pid: number, everyMs = 10): { stop(): Promise<number> } {
  let max = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      max = Math.max(max, await rssBytes(pid).catch(() => 0));
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return max;
    },
  };
}

/** Targets of the process's open descriptors that lie under `dir` (deleted files keep their old path with " (deleted)"). */
export async function openFilesUnder(pid: number, dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [] as string[])) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    if (target.startsWith(dir)) out.push(target);
  }
  return out;
}
