import { Router } from 'express';
import { z } from 'zod';
import type { ContributorStats } from '../../shared/api';
import type { Store } from '../store/store';
import { HttpError } from './http-error';

/** Public standing of a contributor: what the page shows, and what anyone may look up. Never the token. */
export function contributorsRouter(store: Store): Router {
  const router = Router();
  router.get('/contributors/:id', async (req, res) => {
    const id = z.string().uuid().safeParse(req.params.id);
    const c = id.success ? await store.getContributor(id.data) : undefined;
    if (!c) throw new HttpError(404, 'CONTRIBUTOR_NOT_FOUND', `no contributor ${JSON.stringify(req.params.id)}`);
    const body: ContributorStats = {
      id: c.id,
      status: c.trust.status,
      verifiedShards: c.verifiedShards,
      rejectedShards: c.rejectedShards,
      credits: c.credits,
      verifiedGflop: c.flops / 1e9,
      since: new Date(c.createdAt).toISOString(),
      name: c.name,
      team: c.team,
    };
    res.json(body);
  });
  return router;
}
