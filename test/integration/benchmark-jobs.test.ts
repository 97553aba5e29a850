/** Network benchmark jobs (type=benchmark) with simulated contributors: grouping, distinct contributors, checking, bad input. */
import { describe, expect, it } from 'vitest';
import type { BenchmarkList, JobView } from '../../shared/api';
import { authHeaders, benchmarkReport, postBenchmark, submitMatmul, waitForJob } from '../support/coordinator';
import { useCoordinatorHarness } from '../support/harness';
import { randomMatrix } from '../support/matrices';
import { SimContributor } from '../support/sim-contributor';

const h = useCoordinatorHarness({ canaries: false });
const nvidia = { vendor: 'nvidia', architecture: 'ada' };
const amd = { vendor: 'amd', architecture: 'rdna-3' };

async function submit(fields: Record<string, string>): Promise<JobView> {
  const res = await postBenchmark(h.coord.url, fields);
  expect(res.status).toBe(201);
  return (await res.json()) as JobView;
}

describe('network benchmark jobs', () => {
  it('runs the kernel on K distinct contributors and groups their timings by adapter, with spread', async () => {
    await h.start();
    await h.spawn({ kind: 'honest' }, { benchmarks: true, adapter: nvidia, gflops: 100 });
    await h.spawn({ kind: 'honest' }, { benchmarks: true, adapter: nvidia, gflops: 120 });
    await h.spawn({ kind: 'honest' }, { benchmarks: true, adapter: amd, gflops: 50 });
    const job = await submit({ kernel: 'register-r8', sizes: '64,96', shapes: '50x30x70', contributors: '3', reps: '3' });
    expect(job).toMatchObject({ type: 'benchmark', progress: { total: 3 } });
    expect((await waitForJob(h.coord.url, job.id, 30_000)).status).toBe('completed');

    const report = await benchmarkReport(h.coord.url, job.id);
    expect(report).toMatchObject({ kernel: 'register-r8', contributorsWanted: 3, contributorsRan: 3, reps: 3 });
    expect(report.shapes).toEqual([{ m: 64, k: 64, n: 64 }, { m: 96, k: 96, n: 96 }, { m: 50, k: 30, n: 70 }]);
    expect(new Set(report.runs.map((r) => r.contributorId)).size).toBe(3);
    const byVendor = Object.fromEntries(report.groups.map((g) => [g.vendor, g]));
    expect(byVendor.nvidia).toMatchObject({ architecture: 'ada', contributors: 2 });
    expect(byVendor.amd).toMatchObject({ architecture: 'rdna-3', contributors: 1 });
    const nv = byVendor.nvidia!.shapes[0]!;
    expect(nv).toMatchObject({ m: 64, samples: 2, configs: ['register-r8'] });
    expect(nv.gflops.min).toBeCloseTo(100, 5);
    expect(nv.gflops.max).toBeCloseTo(120, 5);
    expect(nv.gflops.median).toBeCloseTo(110, 5);
    expect(nv.gflops.stdev).toBeCloseTo(10, 5);
    expect(report.what).toMatch(/checked at 16 elements/);

    // The public list shows the figures by adapter, but neither requester nor contributor ids.
    const list = (await (await fetch(`${h.coord.url}/api/v1/benchmarks`)).json()) as BenchmarkList;
    expect(list.benchmarks.map((b) => b.jobId)).toEqual([job.id]);
    expect(JSON.stringify(list)).not.toContain(report.runs[0]!.contributorId);
  });

  it('never gives one contributor two runs of a benchmark; with fewer contributors than asked it completes when its wait is over', async () => {
    await h.start();
    const solo = await h.spawn({ kind: 'honest' }, { benchmarks: true, adapter: nvidia });
    const job = await submit({ kernel: 'autotuned', sizes: '32', contributors: '2', wait: '5' });
    await waitForJob(h.coord.url, job.id, 3_000, (j) => j.progress.verified === 1);
    expect((await waitForJob(h.coord.url, job.id, 15_000)).status).toBe('completed');
    expect(solo.benchmarkReplies).toHaveLength(1);
    expect((await benchmarkReport(h.coord.url, job.id)).contributorsRan).toBe(1);
  });

  it('fails a benchmark nobody could run, with the reason', async () => {
    await h.start();
    const job = await submit({ kernel: 'naive-16x16', sizes: '16', wait: '5' });
    const done = await waitForJob(h.coord.url, job.id, 15_000);
    expect(done.status).toBe('failed');
    expect(done.reason).toMatch(/no contributor able to run it answered within 5 s/);
  });

  it('refuses a run whose answers are wrong, strikes its contributor, and keeps it out of the report', async () => {
    await h.start();
    const liar = await h.spawn({ kind: 'flip-one' }, { benchmarks: true, adapter: amd });
    const job = await submit({ kernel: 'register-r4', sizes: '48', contributors: '2' });
    await waitForJob(h.coord.url, job.id, 10_000, () => liar.benchmarkReplies.length === 1);
    expect(liar.benchmarkReplies[0]).toMatchObject({ status: 422, body: { ok: false, error: { code: 'VERIFICATION_FAILED' } } });
    const honest = await h.spawn({ kind: 'honest' }, { benchmarks: true, adapter: nvidia });
    const other = await h.spawn({ kind: 'honest' }, { benchmarks: true, adapter: nvidia });
    expect((await waitForJob(h.coord.url, job.id, 15_000)).status).toBe('completed');
    const report = await benchmarkReport(h.coord.url, job.id);
    expect(report.runs.map((r) => r.contributorId).sort()).toEqual([honest.contributorId, other.contributorId].sort());
    const me = (await (await fetch(`${h.coord.url}/api/v1/contributors/${liar.contributorId}`)).json()) as { rejectedShards: number; status: string };
    expect(me.status).not.toBe('active');
  });

  it('a run handed back with lease:release (the user paused) can be taken again', async () => {
    await h.start();
    const sim = h.track(await new SimContributor(h.coord.url, { kind: 'honest' }, { benchmarks: true }).connect());
    const job = await submit({ kernel: 'register-r8', sizes: '32', contributors: '1' });
    const first = await sim.socket.emitWithAck('lease:request', { max: 1 });
    const run = first.ok ? first.leases[0] : undefined;
    expect(run).toMatchObject({ kind: 'benchmark', jobId: job.id, kernel: 'register-r8', shapes: [{ m: 32, k: 32, n: 32 }] });
    expect(await sim.socket.emitWithAck('lease:release', { shardId: run!.shardId, leaseToken: run!.leaseToken })).toEqual({ ok: true });
    const again = await sim.socket.emitWithAck('lease:request', { max: 1 });
    expect(again.ok && again.leases[0]).toMatchObject({ kind: 'benchmark', jobId: job.id });
    expect(again.ok && again.leases[0]!.leaseToken).not.toBe(run!.leaseToken);
  });

  it('leaves contributors that do not take benchmarks to matmul work', async () => {
    await h.start();
    const plain = await h.spawn({ kind: 'honest' });
    const bench = await submit({ kernel: 'register-r8', sizes: '32', wait: '60' });
    const p = { a: randomMatrix(64, 32, 1), b: randomMatrix(32, 64, 2) };
    const job = await submitMatmul(h.coord.url, { rows: 64, cols: 32, data: p.a }, { rows: 32, cols: 64, data: p.b });
    expect((await waitForJob(h.coord.url, job.id, 15_000)).status).toBe('completed');
    expect(plain.benchmarkReplies).toHaveLength(0);
    expect((await waitForJob(h.coord.url, bench.id, 1_000, () => true)).status).toBe('queued');
  });

  it('answers bad requests with what to fix, and queues nothing', async () => {
    await h.start();
    const cases: [Record<string, string>, number, string, RegExp][] = [
      [{ sizes: '64' }, 400, 'BAD_REQUEST', /kernel/],
      [{ kernel: 'fastest-ever', sizes: '64' }, 400, 'UNKNOWN_KERNEL', /one of: naive-16x16, .*autotuned/],
      [{ kernel: 'register-r8' }, 400, 'MISSING_FIELD', /sizes=256,512/],
      [{ kernel: 'register-r8', sizes: '64,abc' }, 400, 'BAD_REQUEST', /"abc" is not a whole number/],
      [{ kernel: 'register-r8', shapes: '10x10' }, 400, 'BAD_REQUEST', /"10x10" is not M×K×N/],
      [{ kernel: 'register-r8', sizes: '8192' }, 400, 'BAD_REQUEST', /1 to 4096/],
      [{ kernel: 'register-r8', sizes: '64', contributors: '0' }, 400, 'BAD_REQUEST', /contributors: at least 1/],
      [{ kernel: 'register-r8', sizes: '64', reps: 'many' }, 400, 'BAD_REQUEST', /reps must be a number/],
    ];
    for (const [fields, status, code, message] of cases) {
      const res = await postBenchmark(h.coord.url, fields);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect([res.status, body.error.code], JSON.stringify(fields)).toEqual([status, code]);
      expect(body.error.message).toMatch(message);
    }
    const withFile = await postBenchmark(h.coord.url, { kernel: 'register-r8', sizes: '64' }, { a: new Blob([new Uint8Array(8)]) });
    expect(withFile.status).toBe(400);
    expect(((await withFile.json()) as { error: { code: string } }).error.code).toBe('UNEXPECTED_FILE');
    const jobs = (await (await fetch(`${h.coord.url}/api/v1/jobs`, { headers: authHeaders(h.coord.url) })).json()) as { jobs: unknown[] };
    expect(jobs.jobs).toEqual([]);
  });
});
