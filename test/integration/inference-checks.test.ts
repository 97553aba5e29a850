/**
 * A requester sets how many samples of each inference shard the coordinator
 * recomputes, and the job view states the risk that leaves.
 */
import { describe, expect, it } from 'vitest';
import type { JobView } from '../../shared/api';
import { authHeaders, waitForJob } from '../support/coordinator';
import { useCoordinatorHarness } from '../support/harness';
import { inferenceResult, onnxRuntime, postInference, randomTensor, worstRelativeError } from '../support/inference';
import { mlpModel } from '../support/onnx-builder';

const h = useCoordinatorHarness({ canaries: false, targetTiles: 4 });

describe('inference checks per shard', () => {
  it('shows the residual risk of the checks asked for, and with every sample checked no altered sample gets through', async () => {
    await h.start();
    const x = randomTensor([40, 16], 21);
    const post = (fields: Record<string, string>) => postInference(h.coord.url, mlpModel(), { x }, fields);

    const few = (await (await post({ checks: '2' })).json()) as JobView;
    expect(few.inference).toMatchObject({ samplesPerShard: 10, checksPerShard: 2 });
    expect(few.inference!.residualRisk).toBeCloseTo(0.8, 10);
    const replicated = (await (await post({ verification: 'replication' })).json()) as JobView;
    expect(replicated.inference!.residualRisk).toBe(0);
    const tooMany = await post({ checks: '65' });
    expect(tooMany.status).toBe(400);
    expect(await tooMany.text()).toMatch(/checks: at most 64/);
    for (const id of [few.id, replicated.id]) await fetch(`${h.coord.url}/api/v1/jobs/${id}`, { method: 'DELETE', headers: authHeaders(h.coord.url) });

    const all = (await (await post({ checks: '64' })).json()) as JobView;
    expect(all.inference).toMatchObject({ checksPerShard: 10, residualRisk: 0 });
    const cheater = await h.spawn({ kind: 'flip-one' }, { inference: true });
    await h.spawn({ kind: 'honest' }, { inference: true });
    expect((await waitForJob(h.coord.url, all.id, 30_000)).status).toBe('completed');
    const { outputs } = await inferenceResult(h.coord.url, all.id);
    const want = await onnxRuntime(mlpModel(), { x });
    expect(worstRelativeError(outputs['*']!, want.y!)).toBeLessThan(1e-5);
    expect(cheater.stats.verified).toBe(0);
  });

  it('settles disputes between replicas itself, striking the liar at once rather than waiting for a third opinion', async () => {
    await h.start();
    const x = randomTensor([40, 16], 23);
    const res = await postInference(h.coord.url, mlpModel(), { x }, { verification: 'replication' });
    const job = (await res.json()) as JobView;
    const honest = await h.spawn({ kind: 'honest' }, { inference: true });
    const liar = await h.spawn({ kind: 'flip-one' }, { inference: true });
    const second = await h.spawn({ kind: 'honest' }, { inference: true });
    expect((await waitForJob(h.coord.url, job.id, 30_000)).status).toBe('completed');
    const { outputs } = await inferenceResult(h.coord.url, job.id);
    expect(worstRelativeError(outputs['*']!, (await onnxRuntime(mlpModel(), { x })).y!)).toBeLessThan(1e-5);
    expect(liar.stats.verified).toBe(0);
    expect(liar.stats.rejected).toBeGreaterThan(0);
    const standing = async (id: string) => (await h.coord.store.getContributor(id))!.trust;
    expect((await standing(honest.contributorId)).strikes).toBe(0);
    expect((await standing(second.contributorId)).strikes).toBe(0);
    expect((await standing(liar.contributorId)).strikes).toBeGreaterThan(0);
  });

  it('sends canaries to inference-only contributors, dressed as shards of the job they work on, and catches one altered sample in them', async () => {
    await h.start({ canaries: true, targetTiles: 40 });
    const honest = await h.spawn({ kind: 'honest' }, { inference: true });
    const x = randomTensor([160, 16], 31);
    const job = (await (await postInference(h.coord.url, mlpModel(), { x }, { checks: '1' })).json()) as JobView;
    expect((await waitForJob(h.coord.url, job.id, 60_000)).status).toBe('completed');
    const canaries = [];
    for (const l of honest.inferenceLeases) {
      const found = await h.coord.store.findLease(l.leaseToken);
      if (found?.job.hidden) canaries.push({ l, found });
    }
    expect(canaries.length).toBeGreaterThan(0);
    for (const { l, found } of canaries) {
      expect(found.job.type).toBe('inference');
      expect(l.jobId).toBe(job.id); // the real job's id, not the canary's
      expect(l.rows).toBe(job.inference!.samplesPerShard);
      expect(l.model.sha256).toBe(job.inference!.model.sha256);
    }
    expect((await h.coord.store.getContributor(honest.contributorId))!.trust).toMatchObject({ strikes: 0 });
    expect((await h.coord.store.getContributor(honest.contributorId))!.trust.canariesPassed).toBeGreaterThan(0);

    // One altered sample per shard: recompute of one sample in four lets most through, a canary checks them all.
    const liar = await h.spawn({ kind: 'flip-one' }, { inference: true });
    for (let round = 0; round < 5 && (await h.coord.store.getContributor(liar.contributorId))!.trust.canariesFailed === 0; round++) {
      const next = (await (await postInference(h.coord.url, mlpModel(), { x }, { checks: '1' })).json()) as JobView;
      expect((await waitForJob(h.coord.url, next.id, 60_000)).status).toBe('completed');
    }
    expect((await h.coord.store.getContributor(liar.contributorId))!.trust.canariesFailed).toBeGreaterThan(0);
  });
});
