import parsePrometheusTextFormat, { type PromFamily } from 'parse-prometheus-text-format';
import { describe, expect, it } from 'vitest';
import { submitMatmul, waitForJob } from '../support/coordinator';
import { randomMatrix } from '../support/matrices';
import { SimContributor } from '../support/sim-contributor';
import { useCoordinatorHarness } from '../support/harness';

const h = useCoordinatorHarness();

async function scrape(headers: Record<string, string> = {}): Promise<Map<string, PromFamily>> {
  const res = await fetch(`${h.coord.url}/metrics`, { headers });
  expect(res.status).toBe(200);
  const families = parsePrometheusTextFormat(await res.text());
  return new Map(families.map((f) => [f.name, f]));
}

const value = (m: Map<string, PromFamily>, name: string, labels: Record<string, string> = {}) =>
  Number(
    m.get(name)?.metrics.find((s) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v))?.value ?? 0,
  );

describe('/metrics', () => {
  it('counts leased, verified and rejected shards, contributors, queue and jobs, in Prometheus text format', async () => {
    await h.start({ targetTiles: 9, canaries: false });
    const before = await scrape();
    for (const name of [
      'tessera_shards_leased_total',
      'tessera_shards_verified_total',
      'tessera_shards_rejected_total',
      'tessera_lease_expiries_total',
      'tessera_verification_duration_seconds',
      'tessera_contributor_bytes_sent_total',
      'tessera_contributor_bytes_received_total',
      'tessera_http_request_duration_seconds',
      'tessera_contributors_connected',
      'tessera_queue_shards',
      'tessera_jobs',
      'tessera_nodejs_eventloop_lag_seconds',
      'tessera_process_resident_memory_bytes',
    ])
      expect(before.has(name), name).toBe(true);

    const liar = await new SimContributor(h.coord.url, { kind: 'flip-one' }).connect();
    h.track(liar);
    void liar.run().catch(() => undefined);
    const honest = await new SimContributor(h.coord.url, { kind: 'honest', delayMs: 10 }).connect();
    h.track(honest);
    void honest.run().catch(() => undefined);
    const during = await scrape();
    expect(value(during, 'tessera_contributors_connected', { kind: 'simulated', vendor: 'other' })).toBe(2);

    const a = { rows: 192, cols: 32, data: randomMatrix(192, 32, 1) };
    const b = { rows: 32, cols: 192, data: randomMatrix(32, 192, 2) };
    const job = await submitMatmul(h.coord.url, a, b);
    const done = await waitForJob(h.coord.url, job.id);
    expect(done.status).toBe('completed');
    const after = await scrape();
    const delta = (name: string, labels = { job_type: 'matmul' }) => value(after, name, labels) - value(before, name, labels);
    expect(delta('tessera_shards_verified_total')).toBe(job.progress.total);
    expect(delta('tessera_shards_rejected_total')).toBe(liar.stats.rejected);
    expect(liar.stats.rejected).toBeGreaterThan(0);
    expect(delta('tessera_shards_leased_total')).toBeGreaterThanOrEqual(job.progress.total + liar.stats.rejected);
    expect(value(after, 'tessera_jobs', { status: 'completed' })).toBe(1);
    expect(value(after, 'tessera_contributor_bytes_sent_total')).toBeGreaterThan(0);
    expect(value(after, 'tessera_contributor_bytes_received_total')).toBeGreaterThanOrEqual(job.progress.total * 64 * 64 * 4);
    // (the parser keeps no labels on histogram samples, so read the route labels from the text itself)
    const text = await (await fetch(`${h.coord.url}/metrics`)).text();
    const routes = [...text.matchAll(/tessera_http_request_duration_seconds_count\{[^}]*route="([^"]*)"/g)].map((m) => m[1]!);
    expect(routes).toContain('/api/v1/jobs/:id');
    expect(routes.some((r) => /[0-9a-f]{8}-/.test(r))).toBe(false); // templates, never ids
  });

  it('can be protected with a token', async () => {
    await h.start({ metricsToken: 's3cret' });
    expect((await fetch(`${h.coord.url}/metrics`)).status).toBe(401);
    await scrape({ authorization: 'Bearer s3cret' });
  });
});
