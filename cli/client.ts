import { readFile } from 'node:fs/promises';
import { JobListSchema, JobViewSchema, type JobView } from '../shared/api';

/** A small typed client for the REST API, used by the CLI. */
export class TesseraClient {
  constructor(
    readonly server: string,
    private readonly key: string,
  ) {}

  private async call(path: string, init: RequestInit = {}): Promise<Response> {
    const res = await fetch(new URL(path, this.server), { ...init, headers: { authorization: `Bearer ${this.key}`, ...(init.headers ?? {}) } });
    if (!res.ok) {
      const body = (await res.json().catch(() => undefined)) as { error?: { code: string; message: string } } | undefined;
      throw new Error(body?.error ? `${res.status} ${body.error.code}: ${body.error.message}` : `HTTP ${res.status}`);
    }
    return res;
  }

  async submitMatmul(a: string, b: string, opts: { priority?: number; verification?: string }): Promise<JobView> {
    const form = new FormData();
    form.set('type', 'matmul');
    if (opts.priority !== undefined) form.set('priority', String(opts.priority));
    if (opts.verification) form.set('verification', opts.verification);
    form.set('a', new Blob([await readFile(a)]), 'a.npy');
    form.set('b', new Blob([await readFile(b)]), 'b.npy');
    return JobViewSchema.parse(await (await this.call('/api/v1/jobs', { method: 'POST', body: form })).json());
  }

  /** `inputs`: field name → .npy path (the model's input names; `input` for a one-input model). */
  async submitInference(model: string, inputs: Record<string, string>, opts: { priority?: number; verification?: string }): Promise<JobView> {
    const form = new FormData();
    form.set('type', 'inference');
    if (opts.priority !== undefined) form.set('priority', String(opts.priority));
    if (opts.verification) form.set('verification', opts.verification);
    form.set('model', new Blob([await readFile(model)]), 'model.onnx');
    for (const [name, path] of Object.entries(inputs)) form.set(name, new Blob([await readFile(path)]), `${name}.npy`);
    return JobViewSchema.parse(await (await this.call('/api/v1/jobs', { method: 'POST', body: form })).json());
  }

  async job(id: string): Promise<JobView> {
    return JobViewSchema.parse(await (await this.call(`/api/v1/jobs/${encodeURIComponent(id)}`)).json());
  }

  async list(limit: number): Promise<JobView[]> {
    return JobListSchema.parse(await (await this.call(`/api/v1/jobs?limit=${limit}`)).json()).jobs;
  }

  async cancel(id: string): Promise<JobView> {
    return JobViewSchema.parse(await (await this.call(`/api/v1/jobs/${encodeURIComponent(id)}`, { method: 'DELETE' })).json());
  }

  async result(id: string): Promise<Uint8Array> {
    return new Uint8Array(await (await this.call(`/api/v1/jobs/${encodeURIComponent(id)}/result`)).arrayBuffer());
  }

  /** Follows the job's Server-Sent Events until it ends; calls `onProgress` for each update. */
  async follow(id: string, onProgress: (job: JobView) => void): Promise<JobView> {
    const res = await this.call(`/api/v1/jobs/${encodeURIComponent(id)}/events`, { headers: { accept: 'text/event-stream' } });
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let last: JobView | undefined;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const frame = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const event = /^event: (.*)$/m.exec(frame)?.[1];
        const data = /^data: (.*)$/m.exec(frame)?.[1];
        if (event === 'progress' && data) {
          last = JobViewSchema.parse(JSON.parse(data));
          onProgress(last);
        }
      }
    }
    return last ?? this.job(id);
  }
}
