import { existsSync } from 'node:fs';
import { join } from 'node:path';
import cors from 'cors';
import express, { type Express } from 'express';
import { rateLimit, type Store as RateLimitStore } from 'express-rate-limit';
import helmet from 'helmet';
import type { Logger } from '../logger';
import type { BlobStore } from '../storage/blob-store';
import { apiDocsRouter } from './api-docs';
import { apiKeyOf, requireApiKey } from './auth';
import { blobsRouter } from './blobs-routes';
import type { BlobCapability } from './blob-capability';
import { contributorsRouter } from './contributors-routes';
import { errorHandler, HttpError } from './http-error';
import { jobsRouter, type JobsRouteDeps } from './jobs-routes';
import { resultsRouter } from './results-routes';
import type { ResultIntake } from '../scheduler/result-intake';
import { buildOpenApi } from './openapi';
import { requestLog } from './request-log';
import { networkRouter } from './network-routes';
import type { NetworkStats } from '../community/network-stats';
import type { Metrics } from '../metrics/metrics';

export interface AppDeps extends JobsRouteDeps {
  blobs: BlobStore;
  blobUrls: BlobCapability;
  intake: ResultIntake;
  metrics: Metrics;
  network: NetworkStats;
  log: Logger;
  version: string;
  isReady(): boolean;
  clientDir?: string;
  /** Where the per-key request counters live: shared by every coordinator (Redis) in networked mode; in memory by default. */
  rateLimitStore?: RateLimitStore;
}

export function createApp(deps: AppDeps): Express {
  const { config } = deps;
  const app = express();
  app.disable('x-powered-by');
  const tp = config.trustProxy;
  app.set('trust proxy', tp === 'true' ? true : tp === 'false' ? false : /^\d+$/.test(tp) ? Number(tp) : tp);
  // The bench page runs ONNX Runtime Web, whose WebAssembly needs 'wasm-unsafe-eval' (compiling wasm, not JS eval);
  // every other page keeps helmet's default policy.
  const benchCsp = helmet({
    crossOriginEmbedderPolicy: false,
    contentSecurityPolicy: { directives: { scriptSrc: ["'self'", "'wasm-unsafe-eval'"] } },
  });
  const defaultCsp = helmet({ crossOriginEmbedderPolicy: false });
  app.use((req, res, next) => (req.path === '/bench' || req.path === '/bench.html' ? benchCsp : defaultCsp)(req, res, next));
  app.use(deps.metrics.httpMiddleware());
  app.use(requestLog(deps.log));
  // Same-origin only unless the operator lists other origins (a separate dashboard, a CDN-hosted page).
  if (config.corsOrigins.length > 0) app.use('/api', cors({ origin: config.corsOrigins, exposedHeaders: ['Location'] }));

  app.get('/healthz', (_req, res) => {
    if (deps.isReady()) res.json({ status: 'ok' });
    else res.status(503).json({ error: { code: 'NOT_READY', message: 'the coordinator is starting' } });
  });

  app.get('/metrics', async (req, res) => {
    if (config.metricsToken && req.get('authorization') !== `Bearer ${config.metricsToken}`) {
      res.set('WWW-Authenticate', 'Bearer realm="metrics"');
      throw new HttpError(401, 'UNAUTHORIZED', 'send the metrics token as "Authorization: Bearer <TESSERA_METRICS_TOKEN>"');
    }
    res.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });

  const openapi = buildOpenApi(deps.version);
  const api = express.Router();
  api.get('/openapi.json', (_req, res) => res.json(openapi));
  api.use(blobsRouter(deps.blobs, deps.blobUrls, deps.metrics));
  api.use(contributorsRouter(deps.store, config.trustThresholds));
  api.use(networkRouter(deps.network, deps.benchmarks));
  api.use(resultsRouter(deps.store, deps.intake, deps.metrics, deps.benchmarks));
  api.use(
    '/jobs',
    requireApiKey(deps.store),
    rateLimit({
      windowMs: 60_000,
      limit: (_req, res) => apiKeyOf(res).requestsPerMinute,
      keyGenerator: (_req, res) => apiKeyOf(res).id,
      standardHeaders: 'draft-8',
      legacyHeaders: false,
      ...(deps.rateLimitStore ? { store: deps.rateLimitStore } : {}),
      handler: (_req, _res, next) => next(new HttpError(429, 'RATE_LIMITED', 'too many requests for this API key; wait a minute (see the RateLimit headers)')),
    }),
  );
  api.use(jobsRouter(deps));
  api.use((req, _res, next) => next(new HttpError(404, 'NOT_FOUND', `no route ${req.method} ${req.originalUrl}`)));
  app.use('/api/v1', api);
  app.use('/api/docs', apiDocsRouter());
  app.use('/api', (req, _res, next) => next(new HttpError(404, 'NOT_FOUND', `no route ${req.method} ${req.originalUrl}; the API lives under /api/v1`)));

  if (deps.clientDir && existsSync(deps.clientDir)) {
    app.use(express.static(deps.clientDir, { index: 'index.html', extensions: ['html'] }));
    app.get('/', (_req, res) => res.sendFile(join(deps.clientDir!, 'index.html')));
  }
  app.use((req, _res, next) => next(new HttpError(404, 'NOT_FOUND', `no page ${req.originalUrl}`)));
  app.use(errorHandler(deps.log));
  return app;
}
