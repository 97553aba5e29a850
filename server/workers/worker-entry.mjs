// The file piscina starts in each worker thread.
import { setPriority } from 'node:os';

// Linux keeps a nice value per thread: a verification thread yields the CPU to
// the event loop (and the requests it serves) whenever both want it. Elsewhere
// setPriority(0, …) would lower the whole process, so it is left alone there.
if (process.platform === 'linux') {
  try {
    setPriority(10);
  } catch {
    // not allowed here: run at normal priority
  }
}

// Under `npm start` (tsx) the thread inherits tsx's loader and imports
// TypeScript directly; under vitest, or any parent without that loader, tsx's
// scoped import compiles tasks.ts and what it imports.
let tasks;
try {
  tasks = await import('./tasks.ts');
} catch (err) {
  if (err?.code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw err;
  const { tsImport } = await import('tsx/esm/api');
  tasks = await tsImport('./tasks.ts', import.meta.url);
}
export default tasks.default;
