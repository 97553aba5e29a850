import v8 from 'node:v8';
import vm from 'node:vm';

type Gc = (opts: { type: 'major'; execution: 'async' }) => Promise<void>;

/**
 * V8 does not count SharedArrayBuffers toward the heap pressure that starts a
 * collection, so panels evicted from the cache stay in memory until some
 * unrelated major GC: a 30-minute soak grew the coordinator from 164 MiB to
 * 1.6 GiB that way while its JS heap stayed under 100 MiB. Asking for a major
 * collection, run concurrently (`execution: 'async'`), once enough shared
 * memory was let go frees it with pauses of a few milliseconds.
 */
function loadGc(): Gc | undefined {
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc: unknown = vm.runInNewContext('gc');
    return typeof gc === 'function' ? (gc as Gc) : undefined;
  } catch {
    return undefined;
  }
}

const gc = loadGc();
let running: Promise<void> | undefined;

/** Starts a concurrent major collection unless one is under way; never throws, never waits. */
export function collectReleasedSharedMemory(): void {
  if (!gc || running) return;
  running = gc({ type: 'major', execution: 'async' })
    .catch(() => undefined)
    .finally(() => {
      running = undefined;
    });
}
