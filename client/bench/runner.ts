/**
 * The one benchmark runner behind the /bench page and `npm run bench:kernels`:
 * for each shape, the same seeded inputs go to every subject (our
 * configurations, a pasted kernel, TF.js, ORT-web, a JS loop); each is
 * prepared (upload + compile, not timed), warmed up, timed `reps` times, and
 * its answer checked against a float64 CPU reference.
 *
 * What a figure includes: wall-clock time of one run() — launching the
 * product and awaiting the GPU's completion (onSubmittedWorkDone), no upload,
 * no compilation, no readback — the same for every subject, so ratios
 * compare like with like. Where the device has timestamp queries, our own
 * kernels also report GPU time (compute pass start to end).
 */
import { dotErrorRatio, seededMatrix } from '../../shared/seeded';
import type { PreparedMatmul } from '../gpu/prepared-matmul';

export { seededMatrix };

export interface BenchShape {
  m: number;
  k: number;
  n: number;
}

export type SubjectGroup = 'ours' | 'baseline' | 'custom' | 'contender' | 'cpu' | 'op';

export interface BenchSubject {
  id: string;
  label: string;
  group: SubjectGroup;
  /** Uploads and compiles; may name what it resolved to (the autotuned choice). */
  prepare(m: number, k: number, n: number, a: Float32Array, b: Float32Array): Promise<PreparedMatmul & { resolved?: string }>;
  /** Subjects that do not compute A·B (inference ops) bring their own check against a CPU reference… */
  check?(out: Float32Array, a: Float32Array, b: Float32Array, shape: BenchShape): BenchCheck;
  /** …and their own arithmetic count for GFLOPS (2·M·N·K otherwise). */
  flops?(shape: BenchShape): number;
}

export interface BenchOptions {
  warmup: number;
  reps: number;
}

export interface Spread {
  median: number;
  min: number;
  max: number;
}

export interface BenchCheck {
  ok: boolean;
  /** 'full': every element against the reference; 'sampled': 1024 elements plus the corners (large shapes). */
  method: 'full' | 'sampled';
  checked: number;
  /** Largest |error| / bound; the bound is the float32 rounding bound of each dot product, so ≤ 1 passes. */
  worstRatio: number;
}

export interface BenchRow {
  subject: string;
  label: string;
  group: SubjectGroup;
  resolved?: string;
  m: number;
  k: number;
  n: number;
  /** Timed runs behind the figures (after warm-up). */
  runs?: number;
  wallMs?: Spread;
  wallGflops?: number;
  gpuMs?: Spread;
  gpuGflops?: number;
  check?: BenchCheck;
  error?: string;
}

export interface BenchProgress {
  done: number;
  total: number;
  subject: string;
  shape: BenchShape;
}

/** Products up to this many multiply-adds are checked in full; above, by sampling. */
const FULL_CHECK_MACS = 2 ** 26;
const SAMPLES = 1024;

export function spread(samples: number[]): Spread {
  const s = [...samples].sort((x, y) => x - y);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s[s.length - 1]! };
}

/**
 * Warm-up, then `reps` timed runs: wall clock of each (launch to GPU
 * completion) and, where the device has timestamp queries, GPU time. Shared
 * with contributors' network benchmark runs, so both measure the same way.
 */
export async function timeRuns(prepared: PreparedMatmul, warmup: number, reps: number): Promise<{ wallMs: Spread; gpuMs?: Spread; runs: number }> {
  for (let i = 0; i < warmup; i++) await prepared.run();
  const wall: number[] = [];
  const gpu: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await prepared.run();
    wall.push(performance.now() - t0);
    const g = await prepared.gpuMs?.();
    if (g !== undefined) gpu.push(g);
  }
  return { wallMs: spread(wall), ...(gpu.length === wall.length && gpu.length > 0 ? { gpuMs: spread(gpu) } : {}), runs: wall.length };
}

/** Positions checked for a shape: all of them, or a fixed sample that always includes the corners. */
function checkPositions({ m, k, n }: BenchShape): { method: BenchCheck['method']; positions: Iterable<number> } {
  if (m * k * n <= FULL_CHECK_MACS) {
    return { method: 'full', positions: { [Symbol.iterator]: function* () { for (let i = 0; i < m * n; i++) yield i; } } };
  }
  const picks = new Set<number>([0, n - 1, (m - 1) * n, m * n - 1]);
  let s = 0x9e3779b9;
  while (picks.size < Math.min(SAMPLES, m * n)) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    picks.add(s % (m * n));
  }
  return { method: 'sampled', positions: picks };
}

/**
 * Float64 reference per checked element, with the float32 rounding bound
 * γ_K·Σ|a||b| (γ_K = K·u / (1 − K·u)): a correct kernel in any summation
 * order stays inside it; a wrong element is off by the size of the values.
 */
export function checkProduct(c: Float32Array, a: Float32Array, b: Float32Array, shape: BenchShape): BenchCheck {
  const { m, k, n } = shape;
  if (c.length !== m * n) return { ok: false, method: 'full', checked: 0, worstRatio: Infinity };
  const { method, positions } = checkPositions(shape);
  let worst = 0;
  let checked = 0;
  for (const p of positions) {
    const i = Math.floor(p / n);
    const j = p - i * n;
    worst = Math.max(worst, dotErrorRatio(c[p]!, k, a, i * k, 1, b, j, n));
    checked++;
  }
  return { ok: worst <= 1, method, checked, worstRatio: worst };
}

export async function runBenchmark(
  subjects: readonly BenchSubject[],
  shapes: readonly BenchShape[],
  opts: BenchOptions,
  onProgress?: (p: BenchProgress) => void,
): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const total = subjects.length * shapes.length;
  for (const shape of shapes) {
    const { m, k, n } = shape;
    const a = seededMatrix(m * k, 1 + m);
    const b = seededMatrix(k * n, 2 + n);
    const flops = 2 * m * n * k;
    for (const subject of subjects) {
      onProgress?.({ done: rows.length, total, subject: subject.id, shape });
      const row: BenchRow = { subject: subject.id, label: subject.label, group: subject.group, m, k, n };
      const work = subject.flops?.(shape) ?? flops;
      rows.push(row);
      let prepared: (PreparedMatmul & { resolved?: string }) | undefined;
      try {
        prepared = await subject.prepare(m, k, n, a, b);
        if (prepared.resolved) row.resolved = prepared.resolved;
        const t = await timeRuns(prepared, opts.warmup, opts.reps);
        row.runs = t.runs;
        row.wallMs = t.wallMs;
        row.wallGflops = work / (t.wallMs.median * 1e6);
        if (t.gpuMs) {
          row.gpuMs = t.gpuMs;
          row.gpuGflops = work / (t.gpuMs.median * 1e6);
        }
        const out = await prepared.read();
        row.check = subject.check ? subject.check(out, a, b, shape) : checkProduct(out, a, b, shape);
      } catch (err) {
        row.error = err instanceof Error ? err.message : String(err);
      } finally {
        await prepared?.dispose().catch(() => undefined);
      }
    }
  }
  onProgress?.({ done: rows.length, total, subject: '', shape: shapes[shapes.length - 1] ?? { m: 0, k: 0, n: 0 } });
  return rows;
}

/** A plain JavaScript i-k-j triple loop on the CPU: the floor any GPU path should clear. */
export const CPU_SUBJECT: BenchSubject = {
  id: 'cpu-js',
  label: 'JavaScript triple loop (CPU, one thread)',
  group: 'cpu',
  async prepare(m, k, n, a, b) {
    const c = new Float32Array(m * n);
    return {
      async run() {
        c.fill(0);
        for (let i = 0; i < m; i++) {
          for (let p = 0; p < k; p++) {
            const x = a[i * k + p]!;
            const bo = p * n;
            const co = i * n;
            for (let j = 0; j < n; j++) c[co + j]! += x * b[bo + j]!;
          }
        }
      },
      read: async () => c,
      dispose: async () => undefined,
    };
  },
};

const CSV_COLUMNS = ['subject', 'resolved', 'group', 'm', 'k', 'n', 'wall_ms_median', 'wall_ms_min', 'wall_ms_max', 'wall_gflops', 'gpu_ms_median', 'gpu_gflops', 'check', 'check_method', 'worst_error_ratio', 'error'] as const;

export function rowsToCsv(rows: readonly BenchRow[]): string {
  const quote = (v: string | number | undefined) => {
    const s = v === undefined ? '' : String(v);
    return /[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
  };
  const lines = rows.map((r) =>
    [
      r.subject,
      r.resolved,
      r.group,
      r.m,
      r.k,
      r.n,
      r.wallMs?.median.toFixed(3),
      r.wallMs?.min.toFixed(3),
      r.wallMs?.max.toFixed(3),
      r.wallGflops?.toFixed(4),
      r.gpuMs?.median.toFixed(3),
      r.gpuGflops?.toFixed(4),
      r.check ? (r.check.ok ? 'pass' : 'FAIL') : '',
      r.check?.method,
      r.check ? r.check.worstRatio.toExponential(3) : '',
      r.error,
    ]
      .map(quote)
      .join(','),
  );
  return [CSV_COLUMNS.join(','), ...lines].join('\n') + '\n';
}
