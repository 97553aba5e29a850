/**
 * The /bench page: pick kernels and sizes, run them through the shared
 * runner, see GFLOPS as a chart and a table, export JSON or CSV, and time a
 * pasted WGSL kernel the same way. `window.tesseraBench` exposes the same
 * runs to `npm run bench:kernels` and the browser tests.
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import naiveSource from '../../shaders/matmul-naive.wgsl?raw';
import type { BenchmarkList } from '../../shared/api';
import { parseShapeText } from '../../shared/tensor-shape';
import { autotune, tuningKey, type TuningRecord } from '../gpu/autotune';
import { acquireGpu, type GpuHandle } from '../gpu/device';
import { MatmulKernel } from '../gpu/matmul-kernel';
import { SHADER_SOURCES } from '../gpu/shader-sources';
import { BINARY_OPS, InferenceOps, MATMUL_ACTIVATIONS, UNARY_OPS, type OpTensor } from '../gpu/inference-ops';
import { INFERENCE_SOURCES } from '../gpu/inference-sources';
import { ModelRunner } from '../gpu/model-runner';
import { decodeModelPackage } from '../../shared/model-package';
import { loadTuning, saveTuning } from '../storage/identity-store';
import { compileCustomKernel, customSubject, KernelCompileError, type CustomKernelSpec } from './custom-kernel';
import { CPU_SUBJECT, rowsToCsv, runBenchmark, type BenchRow, type BenchShape, type BenchSubject } from './runner';
import { OP_SUBJECT_IDS, OP_SUBJECT_LABELS, opSubject } from './op-subjects';
import { autotunedSubject, configSubject, contenderSubject, type ContenderSubjectId } from './subjects';

export interface BenchRequest {
  /** Subject ids: configuration ids, 'autotuned', 'tfjs-webgpu', 'ort-webgpu', 'cpu-js', the inference ops ('op-softmax', …), 'custom'. */
  subjects: string[];
  shapes: BenchShape[];
  warmup: number;
  reps: number;
  custom?: CustomKernelSpec;
}

export interface BenchEnvironment {
  userAgent: string;
  adapter: GpuHandle['adapter'];
  timestampQuery: boolean;
  subgroups: boolean;
  tuning?: TuningRecord;
}

export interface BenchReport {
  environment: BenchEnvironment;
  request: BenchRequest;
  startedAt: string;
  rows: BenchRow[];
}

export interface BenchApi {
  configs(): { id: string; label: string; production: boolean }[];
  tune(): Promise<TuningRecord>;
  run(req: BenchRequest): Promise<BenchReport>;
  compile(spec: CustomKernelSpec): Promise<{ ok: boolean; messages: { type: string; line: number; column: number; message: string }[]; error?: string }>;
  /** Runs one inference kernel (shaders/inference-*.wgsl) on the given tensors; data travels as plain arrays. */
  op(req: OpRequest): Promise<{ dims: number[]; data: number[] }>;
  /**
   * Runs a whole model (a package from shared/model-package.ts, base64) through the contributor's
   * ModelRunner: `reps` timed runs after one warm-up; returns the last run's outputs and each run's ms.
   */
  model(req: ModelRequest): Promise<{ outputs: number[][]; ms: number[]; profile?: { kind: string; node: string; ms: number }[] }>;
  /** The same ONNX model (base64) on ONNX Runtime Web's WebGPU EP in this browser, timed the same way. */
  ortModel(req: { modelBase64: string; feeds: Record<string, { dims: number[]; data: number[] }>; reps?: number }): Promise<{ outputs: number[][]; ms: number[]; version: string }>;
}

export interface ModelRequest {
  packageBase64: string;
  batch: number;
  /** Each graph input's values for the whole batch, in graph order. */
  inputs: number[][];
  reps?: number;
  /** Also time each launch alone (ModelRunner.profile). */
  profile?: boolean;
}

export interface OpRequest {
  op: keyof typeof UNARY_OPS | keyof typeof BINARY_OPS | 'Softmax' | 'LayerNormalization' | 'Transpose' | 'MatMul';
  inputs: { dims: number[]; data: number[] }[];
  /** LayerNormalization: axis, epsilon; Transpose: perm; MatMul: bias (second input's columns), activation. */
  attrs?: { axis?: number; epsilon?: number; perm?: number[]; bias?: number[]; activation?: keyof typeof MATMUL_ACTIVATIONS };
}

async function runOp(ops: InferenceOps, req: OpRequest): Promise<OpTensor> {
  const t = req.inputs.map((x) => ({ dims: x.dims, data: Float32Array.from(x.data) }));
  const a = req.attrs ?? {};
  if (req.op in UNARY_OPS) return ops.unary(req.op as keyof typeof UNARY_OPS, t[0]!);
  if (req.op in BINARY_OPS) return ops.binary(req.op as keyof typeof BINARY_OPS, t[0]!, t[1]!);
  switch (req.op) {
    case 'Softmax':
      return ops.softmax(t[0]!);
    case 'LayerNormalization':
      return ops.layerNorm(t[0]!, a.axis ?? -1, t[1]!.data, t[2]?.data, a.epsilon ?? 1e-5);
    case 'Transpose':
      return ops.transpose(t[0]!, a.perm ?? t[0]!.dims.map((_, i, d) => d.length - 1 - i));
    case 'MatMul':
      return ops.matmul(t[0]!, t[1]!, a.bias ? Float32Array.from(a.bias) : undefined, a.activation ?? 'none');
    default:
      throw new Error(`unknown op ${String(req.op)}`);
  }
}

declare global {
  interface Window {
    tesseraBench?: BenchApi;
  }
}

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const CONTENDERS: { id: ContenderSubjectId | 'cpu-js'; label: string }[] = [
  { id: 'tfjs-webgpu', label: 'TensorFlow.js WebGPU' },
  { id: 'ort-webgpu', label: 'ONNX Runtime Web (WebGPU)' },
  { id: 'cpu-js', label: 'JavaScript loop (CPU)' },
];
const SIZES = [256, 512, 1024, 2048];
const MAX_DIM = 8192;

let gpu: GpuHandle | undefined;
let kernel: MatmulKernel | undefined;
let tuning: TuningRecord | undefined;
let lastReport: BenchReport | undefined;
let chart: uPlot | undefined;
let busy = false;
let ops: InferenceOps | undefined;

function environment(): BenchEnvironment {
  return {
    userAgent: navigator.userAgent,
    adapter: gpu!.adapter,
    timestampQuery: gpu!.device.features.has('timestamp-query'),
    subgroups: gpu!.device.features.has('subgroups'),
    ...(tuning ? { tuning } : {}),
  };
}

function describeTuning(t: TuningRecord): string {
  return (['small', 'medium', 'large'] as const).map((c) => `${c}: ${t.configs[c]} (${t.gflops[c].toFixed(2)} GFLOPS)`).join(' · ');
}

async function ensureTuning(onProgress?: (text: string) => void): Promise<TuningRecord> {
  const key = tuningKey(gpu!.adapter, navigator.userAgent, SHADER_SOURCES);
  tuning ??= await loadTuning(key).catch(() => undefined);
  if (!tuning || tuning.key !== key) {
    tuning = await autotune(kernel!, key, (p) => onProgress?.(`Tuning: ${p.config} at the ${p.sizeClass} size (${p.done + 1}/${p.total})`));
    await saveTuning(tuning).catch(() => undefined);
  }
  kernel!.setTuning(tuning);
  $('gpu-tuning').textContent = describeTuning(tuning);
  return tuning;
}

async function subjectsFor(req: BenchRequest, progress: (t: string) => void): Promise<BenchSubject[]> {
  const out: BenchSubject[] = [];
  for (const id of req.subjects) {
    const config = kernel!.configs().find((c) => c.id === id);
    if (config) out.push(configSubject(kernel!, config));
    else if (id === 'autotuned') {
      await ensureTuning(progress);
      out.push(autotunedSubject(kernel!));
    } else if (id === 'tfjs-webgpu' || id === 'ort-webgpu') {
      progress(`Loading ${id}…`);
      out.push(await contenderSubject(id));
    } else if (id === 'cpu-js') out.push(CPU_SUBJECT);
    else if (OP_SUBJECT_IDS.includes(id)) {
      ops ??= new InferenceOps(gpu!.device, INFERENCE_SOURCES);
      out.push(opSubject(ops, id)!);
    }
    else if (id === 'custom') {
      if (!req.custom) throw new Error('the custom kernel was selected but no kernel was given');
      out.push(customSubject(gpu!.device, req.custom));
    } else throw new Error(`unknown kernel "${id}"; known: ${kernel!.configs().map((c) => c.id).join(', ')}, autotuned, tfjs-webgpu, ort-webgpu, cpu-js, ${OP_SUBJECT_IDS.join(', ')}, custom`);
  }
  return out;
}

function checkRequest(req: BenchRequest): void {
  if (req.subjects.length === 0) throw new Error('choose at least one kernel');
  if (req.shapes.length === 0) throw new Error('choose at least one size');
  for (const s of req.shapes) {
    for (const v of [s.m, s.k, s.n]) {
      if (!Number.isInteger(v) || v < 1 || v > MAX_DIM) throw new Error(`shape ${s.m}×${s.k}×${s.n}: every dimension must be a whole number from 1 to ${MAX_DIM}`);
    }
  }
  if (!Number.isInteger(req.warmup) || req.warmup < 0 || req.warmup > 20) throw new Error('warm-up runs: 0 to 20');
  if (!Number.isInteger(req.reps) || req.reps < 1 || req.reps > 50) throw new Error('timed runs: 1 to 50');
}

async function run(req: BenchRequest): Promise<BenchReport> {
  if (!kernel) throw new Error('WebGPU is not available in this browser');
  if (busy) throw new Error('a run is already in progress');
  checkRequest(req);
  busy = true;
  $<HTMLButtonElement>('run').disabled = true;
  const progress = (t: string) => ($('progress').textContent = t);
  try {
    const subjects = await subjectsFor(req, progress);
    const startedAt = new Date().toISOString();
    const rows = await runBenchmark(subjects, req.shapes, { warmup: req.warmup, reps: req.reps }, (p) => {
      if (p.subject) progress(`Running ${p.subject} at ${p.shape.m}×${p.shape.k}×${p.shape.n} (${p.done + 1}/${p.total})`);
    });
    const failed = rows.filter((r) => r.error || !r.check?.ok).length;
    progress(`Done: ${rows.length} measurements${failed ? `, ${failed} failed or wrong (see the table)` : ', every answer checked'}.`);
    lastReport = { environment: environment(), request: req, startedAt, rows };
    render(lastReport);
    return lastReport;
  } catch (err) {
    progress(err instanceof Error ? err.message : String(err));
    throw err;
  } finally {
    busy = false;
    $<HTMLButtonElement>('run').disabled = false;
  }
}

const shapeText = (r: { m: number; k: number; n: number }) => `${r.m}×${r.k}×${r.n}`;
const fixed = (x: number | undefined, d = 2) => (x === undefined ? '—' : x >= 100 ? x.toFixed(0) : x.toFixed(d));

function render(report: BenchReport): void {
  $('results').hidden = false;
  const env = report.environment;
  $('timing-note').textContent =
    'GFLOPS = 2·M·N·K / median wall-clock time of one run (launch to GPU completion; no upload, compilation or readback), ' +
    `the same for every kernel. ${env.timestampQuery ? 'GPU ms is the compute pass itself, from timestamp queries (our kernels only).' : 'This GPU has no timestamp queries: wall clock only.'}`;
  const body = $('table').querySelector('tbody')!;
  body.replaceChildren();
  for (const r of report.rows) {
    const tr = body.insertRow();
    const cells = [
      r.resolved ? `${r.subject} → ${r.resolved}` : r.subject,
      shapeText(r),
      r.wallMs ? `${fixed(r.wallMs.median)} (${fixed(r.wallMs.min)}–${fixed(r.wallMs.max)})` : '—',
      fixed(r.wallGflops, 3),
      r.gpuMs ? fixed(r.gpuMs.median) : '—',
      fixed(r.gpuGflops, 3),
    ];
    for (const text of cells) tr.insertCell().textContent = text;
    const check = tr.insertCell();
    if (r.error) {
      check.textContent = `error: ${r.error}`;
      check.className = 'fail';
    } else if (r.check) {
      check.textContent = `${r.check.ok ? 'pass' : 'FAIL'} (${r.check.method}, ${r.check.checked})`;
      check.className = r.check.ok ? 'pass' : 'fail';
      check.title = `worst error / rounding bound = ${r.check.worstRatio.toExponential(2)}`;
    }
  }
  renderChart(report.rows);
}

const PALETTE = ['#2a9d3a', '#1f77b4', '#ff7f0e', '#9467bd', '#d62728', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22', '#393b79', '#637939'];

function renderChart(rows: BenchRow[]): void {
  const shapes = [...new Set(rows.map(shapeText))];
  const subjects = [...new Set(rows.map((r) => r.subject))];
  const data: uPlot.AlignedData = [
    shapes.map((_, i) => i),
    ...subjects.map((s) => shapes.map((sh) => rows.find((r) => r.subject === s && shapeText(r) === sh)?.wallGflops ?? null)),
  ];
  const el = $('chart');
  chart?.destroy();
  el.replaceChildren();
  chart = new uPlot(
    {
      width: Math.max(280, el.clientWidth),
      height: 260,
      // Half a step of margin each side, so the first and last shapes' labels are not clipped.
      scales: { x: { time: false, range: () => [-0.5, shapes.length - 0.5] } },
      axes: [{ values: (_u, ticks) => ticks.map((t) => shapes[t] ?? ''), splits: () => shapes.map((_, i) => i) }, { label: 'GFLOPS' }],
      series: [{ label: 'shape', value: (_u, v) => (v === null ? '' : (shapes[v] ?? '')) }, ...subjects.map((s, i) => ({ label: s, stroke: PALETTE[i % PALETTE.length]!, width: 2, points: { show: true } }))],
    },
    data,
    el,
  );
}

function download(name: string, type: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function checkbox(container: HTMLElement, value: string, label: string, checked: boolean, title?: string): void {
  const l = document.createElement('label');
  const input = document.createElement('input');
  input.type = 'checkbox';
  input.value = value;
  input.checked = checked;
  l.append(input, ` ${label}`);
  if (title) l.title = title;
  container.append(l);
}

const checkedValues = (id: string) => [...$(id).querySelectorAll<HTMLInputElement>('input:checked')].map((i) => i.value);

export function parseShapes(text: string): BenchShape[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      const shape = parseShapeText(s);
      if (!shape) throw new Error(`"${s}" is not a shape; write M×K×N, e.g. 300x200x500`);
      return shape;
    });
}

function customSpec(): CustomKernelSpec {
  const num = (id: string) => Number($<HTMLInputElement>(id).value);
  return {
    code: $<HTMLTextAreaElement>('custom-code').value,
    entryPoint: $<HTMLInputElement>('custom-entry').value.trim(),
    bindings: { a: num('custom-a'), b: num('custom-b'), c: num('custom-c'), dims: num('custom-dims') },
    block: { rows: num('custom-rows'), cols: num('custom-cols') },
    pad: $<HTMLSelectElement>('custom-pad').value as CustomKernelSpec['pad'],
  };
}

async function compile(spec: CustomKernelSpec): ReturnType<BenchApi['compile']> {
  try {
    const { messages } = await compileCustomKernel(gpu!.device, spec);
    return { ok: true, messages };
  } catch (err) {
    if (err instanceof KernelCompileError) return { ok: false, messages: err.messages, error: 'the WGSL compiler reported errors' };
    return { ok: false, messages: [], error: err instanceof Error ? err.message : String(err) };
  }
}

/** Messages with the offending source line under each, as a compiler would print them. */
function showCompile(result: Awaited<ReturnType<BenchApi['compile']>>, code: string): void {
  const el = $('custom-messages');
  const lines = code.split('\n');
  const text = result.messages.map((m) => {
    const src = lines[m.line - 1];
    const caret = src !== undefined && m.column > 0 ? `\n    ${src}\n    ${' '.repeat(m.column - 1)}^` : '';
    return `${m.type} at line ${m.line}, column ${m.column}: ${m.message}${caret}`;
  });
  if (result.error && result.messages.length === 0) text.push(result.error);
  if (result.ok) text.unshift('Compiled: ready to time.');
  el.textContent = text.join('\n\n');
  el.classList.toggle('error', !result.ok);
}

/** Past network benchmarks from the public API; every value goes in as text. */
async function renderNetwork(): Promise<void> {
  const el = $('network-results');
  let list: BenchmarkList;
  try {
    const res = await fetch('/api/v1/benchmarks?limit=10');
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    list = (await res.json()) as BenchmarkList;
  } catch (err) {
    el.textContent = `Could not load network results (${err instanceof Error ? err.message : String(err)}).`;
    return;
  }
  if (list.benchmarks.length === 0) {
    el.textContent = 'No network benchmark has completed yet.';
    return;
  }
  el.replaceChildren();
  for (const b of list.benchmarks) {
    const table = document.createElement('table');
    table.className = 'network-bench';
    table.createCaption().textContent = `${b.kernel} on ${b.contributorsRan} contributor${b.contributorsRan === 1 ? '' : 's'} (job ${b.jobId.slice(0, 8)})`;
    const head = table.createTHead().insertRow();
    for (const t of ['GPU', 'Shape', 'Contributors', 'GFLOPS median', 'min–max', 'σ']) head.insertCell().textContent = t;
    const body = table.createTBody();
    for (const g of b.groups) {
      for (const s of g.shapes) {
        const tr = body.insertRow();
        for (const t of [`${g.vendor} ${g.architecture}`, shapeText(s), String(s.samples), fixed(s.gflops.median, 3), `${fixed(s.gflops.min, 3)}–${fixed(s.gflops.max, 3)}`, fixed(s.gflops.stdev, 3)]) tr.insertCell().textContent = t;
      }
    }
    const wrap = document.createElement('div');
    wrap.className = 'scroll';
    wrap.append(table);
    el.append(wrap);
  }
}

async function main(): Promise<void> {
  void renderNetwork();
  try {
    gpu = await acquireGpu(navigator.gpu, (reason) => {
      $('gpu-status').textContent = `The GPU device was lost (${reason}). Reload the page to continue.`;
      kernel = undefined;
    });
  } catch (err) {
    $('gpu-status').innerHTML =
      'WebGPU is not available in this browser, so kernels cannot run here. Use a current Chrome, Edge or Opera (113+), ' +
      'Safari 26+, or Firefox 141+ on Windows; on Linux, Chrome needs <code>chrome://flags/#enable-unsafe-webgpu</code> and Vulkan.';
    $('gpu-status').classList.add('warning');
    console.warn(err);
    return;
  }
  kernel = new MatmulKernel(gpu.device, SHADER_SOURCES);
  const a = gpu.adapter;
  $('gpu-status').textContent = 'WebGPU is ready.';
  $('gpu-details').hidden = false;
  $('gpu-adapter').textContent = [a.vendor, a.architecture, a.device, a.description].filter(Boolean).join(' · ') || 'unnamed adapter';
  $('gpu-timing').textContent = gpu.device.features.has('timestamp-query') ? 'GPU timestamp queries, and wall clock' : 'wall clock only (no timestamp queries)';
  $('gpu-subgroups').textContent = gpu.device.features.has('subgroups') ? 'yes: the subgroup kernel is available' : 'no';
  const key = tuningKey(a, navigator.userAgent, SHADER_SOURCES);
  tuning = await loadTuning(key).catch(() => undefined);
  if (tuning) {
    kernel.setTuning(tuning);
    $('gpu-tuning').textContent = describeTuning(tuning);
  } else $('gpu-tuning').textContent = 'not tuned yet: choosing "autotuned" tunes first (a few seconds)';

  const kernels = $('kernels');
  checkbox(kernels, 'autotuned', 'autotuned', true, 'the configuration this GPU’s tuning picks for each size');
  for (const c of kernel.configs()) checkbox(kernels, c.id, c.id, c.id === 'naive-16x16', c.label);
  for (const c of CONTENDERS) checkbox(kernels, c.id, c.label, false);
  const opsBox = $('ops');
  for (const id of OP_SUBJECT_IDS) checkbox(opsBox, id, id.replace(/^op-/, ''), false, OP_SUBJECT_LABELS[id]);
  const sizes = $('sizes');
  for (const s of SIZES) checkbox(sizes, String(s), String(s), s <= 512);

  $<HTMLTextAreaElement>('custom-code').value = naiveSource;
  $<HTMLButtonElement>('run').disabled = false;
  $<HTMLButtonElement>('custom-compile').disabled = false;

  $('run').addEventListener('click', () => {
    let req: BenchRequest;
    try {
      const include = $<HTMLInputElement>('custom-include').checked;
      req = {
        subjects: [...checkedValues('kernels'), ...checkedValues('ops'), ...(include ? ['custom'] : [])],
        shapes: [...checkedValues('sizes').map((s) => ({ m: Number(s), k: Number(s), n: Number(s) })), ...parseShapes($<HTMLInputElement>('shapes').value)],
        warmup: Number($<HTMLInputElement>('warmup').value),
        reps: Number($<HTMLInputElement>('reps').value),
        ...(include ? { custom: customSpec() } : {}),
      };
    } catch (err) {
      $('progress').textContent = err instanceof Error ? err.message : String(err);
      return;
    }
    run(req).catch(() => undefined); // shown in the progress line
  });
  $('custom-compile').addEventListener('click', () => {
    const spec = customSpec();
    void compile(spec).then((r) => showCompile(r, spec.code));
  });
  $('export-json').addEventListener('click', () => lastReport && download('tessera-bench.json', 'application/json', JSON.stringify(lastReport, null, 2)));
  $('export-csv').addEventListener('click', () => lastReport && download('tessera-bench.csv', 'text/csv', rowsToCsv(lastReport.rows)));

  window.tesseraBench = {
    configs: () => kernel!.configs().map((c) => ({ id: c.id, label: c.label, production: c.production })),
    tune: () => ensureTuning((t) => ($('progress').textContent = t)),
    run,
    async compile(spec) {
      const r = await compile(spec);
      showCompile(r, spec.code);
      return r;
    },
    async op(req) {
      ops ??= new InferenceOps(gpu!.device, INFERENCE_SOURCES);
      const out = await runOp(ops, req);
      return { dims: out.dims, data: Array.from(out.data) };
    },
    async model(req) {
      ops ??= new InferenceOps(gpu!.device, INFERENCE_SOURCES);
      const bytes = Uint8Array.from(atob(req.packageBase64), (c) => c.charCodeAt(0));
      const runner = new ModelRunner(ops, decodeModelPackage(bytes), gpu!.limits.maxStorageBufferBindingSize);
      try {
        const inputs = req.inputs.map((x) => Float32Array.from(x));
        let outputs = await runner.run(req.batch, inputs);
        const ms: number[] = [];
        for (let i = 0; i < (req.reps ?? 0); i++) {
          const t0 = performance.now();
          outputs = await runner.run(req.batch, inputs);
          ms.push(performance.now() - t0);
        }
        const profile = req.profile ? await runner.profile(req.batch, inputs) : undefined;
        return { outputs: outputs.map((o) => Array.from(o)), ms, ...(profile ? { profile } : {}) };
      } finally {
        runner.dispose();
      }
    },
    async ortModel(req) {
      const { runOrtModel } = await import('./contenders');
      const bytes = Uint8Array.from(atob(req.modelBase64), (c) => c.charCodeAt(0));
      const feeds = Object.fromEntries(Object.entries(req.feeds).map(([k, t]) => [k, { dims: t.dims, data: Float32Array.from(t.data) }]));
      const r = await runOrtModel(bytes, feeds, req.reps ?? 0);
      return { outputs: r.outputs.map((o) => Array.from(o)), ms: r.ms, version: r.version };
    },
  };
  document.body.dataset.ready = 'true';
}

void main();
