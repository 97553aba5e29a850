import { Router } from 'express';
import { z } from 'zod';
import type { ContributorStats } from '../../shared/api';
import type { ContributorRecord, Store } from '../store/store';
import { sha256Hex } from '../sha256';
import { HttpError } from './http-error';
import { DEFAULT_TRUST_THRESHOLDS, trustLevel, type TrustThresholds } from '../trust/reputation';

/**
 * Public standing of a contributor: what the page shows, and what anyone may look up. Never the
 * token, and never the network it came from.
 */
export function contributorsRouter(store: Store, thresholds: TrustThresholds = DEFAULT_TRUST_THRESHOLDS): Router {
  const router = Router();
  /** A contributor's own stats, by its identity token (what the page and agent keep). */
  router.get('/contributors/me', async (req, res) => {
    const token = /^Bearer\s+(\S{16,128})$/i.exec(req.get('authorization') ?? '')?.[1];
    const c = token ? await store.findContributorByTokenHash(sha256Hex(token)) : undefined;
    if (!c) throw new HttpError(401, 'UNAUTHORIZED', 'send your contributor identity token as "Authorization: Bearer <token>"');
    res.set('Cache-Control', 'private, no-store');
    res.json(view(c, thresholds));
  });

  router.get('/contributors/:id', async (req, res) => {
    const id = z.string().uuid().safeParse(req.params.id);
    const c = id.success ? await store.getContributor(id.data) : undefined;
    if (!c) throw new HttpError(404, 'CONTRIBUTOR_NOT_FOUND', `no contributor ${JSON.stringify(req.params.id)}`);
    res.json(view(c, thresholds));
  });
  return router;
}

function view(c: ContributorRecord, thresholds: TrustThresholds): ContributorStats {
  return {
    id: c.id,
    status: c.trust.status,
    strikes: c.trust.strikes,
    trustLevel: trustLevel(c.trust, Date.now(), thresholds),
    probation: c.trust.probation,
    verifiedJobs: c.trust.verifiedJobs,
    canariesPassed: c.trust.canariesPassed,
    firstVerifiedAt: c.trust.firstVerifiedAt === null ? null : new Date(c.trust.firstVerifiedAt).toISOString(),
    verifiedShards: c.verifiedShards,
    rejectedShards: c.rejectedShards,
    credits: c.credits,
    verifiedGflop: c.flops / 1e9,
    since: new Date(c.createdAt).toISOString(),
    name: c.name,
    team: c.team,
  };
}
