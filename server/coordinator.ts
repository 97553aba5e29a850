import { mkdir, readdir, unlink } from 'node:fs/promises';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Server as SocketServer } from 'socket.io';
import { MAX_RESULT_BYTES } from '../shared/protocol';
import type { Config } from './config';
import { ensureLocalKey } from './auth/api-keys';
import { KeyRevocations } from './auth/key-revocations';
import { createApp } from './http/app';
import { JobFinisher, type NodeIdentity } from './jobs/job-finisher';
import { createLogger, type Logger } from './logger';
import { attachContributorChannel, contributorRoom, type ContributorServer } from './realtime/contributor-channel';
import { IdleSessions, MIN_WAKE_INTERVAL_MS } from './realtime/idle-sessions';
import { TuningCensus } from './scheduler/tuning-census';
import { BenchmarkService } from './benchmarks/benchmark-service';
import { Metrics } from './metrics/metrics';
import { NetworkStats } from './community/network-stats';
import { Dispatcher } from './scheduler/dispatcher';
import { DEFAULT_LEASE_POLICY } from './scheduler/lease-policy';
import { openStorage } from './storage/open-storage';
import type { Store } from './store/store';
import { RedisLink } from './realtime/redis-link';
import { WorkSignal } from './realtime/work-signal';
import { FreivaldsVerifier } from './verify/matmul-verifier';
import { CanaryVerifier } from './verify/canary-verifier';
import { ReplicationVerifier, matmulReplicaRules } from './verify/replication-verifier';
import { InferenceJobs, InferenceVerifier, inferenceReplicaRules } from './verify/inference-verifier';
import { WorkerPool } from './workers/pool';
import { ResultIntake } from './scheduler/result-intake';
import { CanaryPool } from './trust/canary-pool';
import { InferenceCanaries } from './trust/inference-canaries';
import { TrustKeeper } from './trust/trust-keeper';
import { PanelCache } from './verify/panel-cache';
import { BlobCapability, loadBlobKey } from './http/blob-capability';

const VERSION = '0.1.0';
/** How soon a key revoked by another process (the keys CLI, another node) takes effect here. */
const KEY_REVOCATION_POLL_MS = 500;
const KEY_REVOCATION_SWEEP_MS = 30_000;

export interface Coordinator {
  /** Base URL, e.g. http://127.0.0.1:8080 */
  url: string;
  http: HttpServer;
  io: ContributorServer;
  store: Store;
  log: Logger;
  close(): Promise<void>;
}

async function removeStaleUploads(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const name of await readdir(dir)) await unlink(join(dir, name)).catch(() => undefined);
}

export async function startCoordinator(config: Config, log: Logger = createLogger(config.logLevel)): Promise<Coordinator> {
  await mkdir(config.dataDir, { recursive: true });
  await removeStaleUploads(join(config.dataDir, 'uploads'));
  const storage = await openStorage(config);
  const { store, blobs, results } = storage;
  const cluster = config.cluster;
  const node: NodeIdentity | undefined = cluster ? { nodeId: cluster.nodeId, sessionPrefix: `${cluster.nodeId}:` } : undefined;
  const blobUrls = new BlobCapability(await loadBlobKey(store, config.blobSecret));
  const finisher = new JobFinisher(store, results, blobs, log, node);
  await finisher.recover();
  await ensureLocalKey(store, config.dataDir, config.keyDefaults, log, config.logLevel !== 'silent').catch(async (err: unknown) => {
    // Nodes starting together on an empty database race to create the first key: one wins, the others use it.
    if (!cluster || (await store.listApiKeys()).length === 0) throw err;
  });

  // Socket.IO wraps the server's existing request listener so that /socket.io/ never reaches express:
  // the listener must exist before the Socket.IO server is attached.
  let app: ReturnType<typeof createApp> | undefined;
  const http = createServer((req, res) => app!(req, res));
  const io: ContributorServer = new SocketServer(http, {
    maxHttpBufferSize: MAX_RESULT_BYTES + 64 * 1024,
    pingInterval: 10_000,
    pingTimeout: 20_000,
    // A connection that joins no namespace is closed as soon as one that says no hello would be.
    connectTimeout: config.helloTimeoutMs,
    // Contributor pages are served by the coordinator itself; other origins only when the operator lists them.
    ...(config.corsOrigins.length > 0 ? { cors: { origin: config.corsOrigins } } : {}),
  });
  const redis = cluster?.redisUrl ? await RedisLink.connect(cluster.redisUrl, log) : undefined;
  redis?.attach(io);
  if (cluster && !redis) log.warn('TESSERA_REDIS_URL is not set: lease revocations and rate limits stay on the node that makes them');
  const metrics = new Metrics(store);
  const network = new NetworkStats(store, metrics);
  const idle = new IdleSessions();
  const census = new TuningCensus();
  // Sessions woken a moment ago are left out of a wake-up (IdleSessions); one deferred wake-up covers them.
  let deferredWake: NodeJS.Timeout | undefined;
  let deferredShards = 0;
  const wakeIdle = (shards: number) => {
    // Pipelining contributors take several shards each; waking a few more than needed costs little.
    // Only this node's sockets are idle here: `local` keeps the wake-up off the Redis adapter.
    const woken = idle.take(shards + 2);
    for (const sessionId of woken) io.local.to(sessionId).emit('work:available');
    if (woken.length >= shards + 2 || !idle.anyThrottled()) return;
    deferredShards += shards;
    deferredWake ??= setTimeout(() => {
      deferredWake = undefined;
      const n = deferredShards;
      deferredShards = 0;
      wakeIdle(n);
    }, MIN_WAKE_INTERVAL_MS).unref();
  };
  const signal = cluster && storage.pool ? await WorkSignal.start(cluster.databaseUrl, storage.pool, cluster.nodeId, wakeIdle, log) : undefined;
  const workAvailable = (shards: number) => {
    wakeIdle(shards);
    signal?.publish(shards);
  };
  const panels = new PanelCache(blobs, config.panelCacheBytes);
  // Verification (and other CPU-heavy work) runs on these threads, never on the event loop.
  const workers = new WorkerPool({ threads: config.verifyThreads, taskTimeoutMs: config.verifyTaskMs });
  const trust = new TrustKeeper({
    store,
    blobs,
    log,
    thresholds: config.trustThresholds,
    // Disconnect a moment later, so the reply to the message that caused the ban still reaches the contributor.
    onBanned: (contributorId) => setTimeout(() => io.in(contributorRoom(contributorId)).disconnectSockets(true), 50).unref(),
    onRequeued: workAvailable,
  });
  const canaries = config.canaries ? new CanaryPool(store, blobs, log, { workers }) : undefined;
  const benchmarks = new BenchmarkService({ store, trust, metrics, log, leaseBaseMs: config.leaseBaseMs });
  const dispatcher = new Dispatcher({
    store,
    trust,
    benchmarks,
    ...(canaries ? { canaries, inferenceCanaries: new InferenceCanaries(store, blobs) } : {}),
    policy: { baseMs: config.leaseBaseMs, ...DEFAULT_LEASE_POLICY },
    sweepMs: config.leaseSweepMs,
    metrics,
    maxLeasesPerSession: config.maxLeasesPerContributor,
    speculateAfterMs: config.speculateAfterMs,
    modelAffinityMs: config.modelAffinityMs,
    log,
    notify: { workAvailable },
    blobUrls,
  });
  const inferenceJobs = new InferenceJobs(store);
  const intake = new ResultIntake({
    store,
    blobs,
    results,
    finisher,
    trust,
    verifiers: {
      freivalds: new FreivaldsVerifier(panels, workers),
      replication: new ReplicationVerifier(store, blobs, matmulReplicaRules(panels, workers)),
      canary: new CanaryVerifier(store, panels, workers),
      inference: new InferenceVerifier(inferenceJobs, panels, workers),
      inferenceReplication: new ReplicationVerifier(store, blobs, inferenceReplicaRules(inferenceJobs, panels, workers)),
    },
    maxShardFailures: config.maxShardFailures,
    verifyTaskSeconds: config.verifyTaskMs / 1000,
    log,
    metrics,
    onRequeued: workAvailable,
    onVerified: (sessionId, flops, ms) => {
      dispatcher.recordVerified(sessionId, flops, ms);
      network.record(flops);
    },
  });
  attachContributorChannel(io, {
    ...(node ? { sessionPrefix: node.sessionPrefix } : {}),
    store,
    dispatcher,
    intake,
    trust,
    idle,
    census,
    metrics,
    rateLimit: config.rateLimit,
    helloTimeoutMs: config.helloTimeoutMs,
    trustProxy: config.trustProxy,
    newIdentities: config.newIdentities,
    log,
  });

  const revokeLeases = (revoked: { sessionId: string; shardId: string }[], reason: string) => {
    for (const r of revoked) io.to(r.sessionId).emit('lease:revoked', { shardId: r.shardId, reason });
  };
  // A job's canaries carry its id: they are withdrawn with its leases, or the one lease left would give them away.
  const revokeJobLeases = async (jobId: string, revoked: { sessionId: string; shardId: string }[], reason: string) => {
    revokeLeases([...revoked, ...(await dispatcher.withdrawCanaries(jobId))], reason);
  };
  const revocations = new KeyRevocations({
    store,
    log,
    pollMs: KEY_REVOCATION_POLL_MS,
    sweepMs: KEY_REVOCATION_SWEEP_MS,
    async cancelJob(jobId, reason) {
      const now = Date.now();
      const cancelled = await store.cancelJob(jobId, now, reason);
      // Another node (or the requester) ended it first: its leases and inputs are already dealt with.
      if (!cancelled || cancelled.job.completedAt !== now) return false;
      await finisher.discard(jobId);
      await revokeJobLeases(jobId, cancelled.revoked, reason);
      return true;
    },
  });

  let ready = false;
  app = createApp({
    config,
    store,
    blobs,
    blobUrls,
    results,
    finisher,
    census,
    benchmarks,
    workers,
    intake,
    metrics,
    network,
    log,
    clientDir: config.clientDir,
    version: VERSION,
    isReady: () => ready,
    ...(redis ? { rateLimitStore: redis.rateLimitStore('jobs') } : {}),
    onJobQueued: (shards, model) => {
      if (model) dispatcher.inferenceQueued(model.jobId, model.sha256);
      workAvailable(shards);
    },
    onJobCancelled: (jobId, revoked) => {
      revokeJobLeases(jobId, revoked, 'job cancelled').catch((err: unknown) => log.error({ err, jobId }, 'withdrawing canaries failed'));
    },
    revocations,
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(config.port, config.host, resolve);
  });
  dispatcher.start();
  await revocations.start();
  network.start((err) => log.error({ err }, 'network snapshot failed'));
  const expirer = setInterval(() => {
    finisher.expireResults(Date.now() - config.resultTtlMs).catch((err: unknown) => log.error({ err }, 'result expiry failed'));
  }, Math.min(60_000, Math.max(1_000, config.resultTtlMs / 4)));
  expirer.unref();
  const replicaSettler = setInterval(() => {
    intake.settleOverdueReplicas(Date.now()).catch((err: unknown) => log.error({ err }, 'settling overdue replicas failed'));
  }, config.leaseSweepMs);
  replicaSettler.unref();
  // With several nodes, the node that verified a job's last tile may die before assembling it: every node looks.
  const finalizer = cluster
    ? setInterval(() => {
        finisher.finalizePending().catch((err: unknown) => log.error({ err }, 'finalizing pending jobs failed'));
      }, cluster.finalizePollMs)
    : undefined;
  finalizer?.unref();
  ready = true;
  const addr = http.address() as AddressInfo;
  const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  const url = `http://${host}:${addr.port}`;
  log.info({ url, dataDir: config.dataDir, ...(node ? { nodeId: node.nodeId, redis: redis !== undefined } : {}) }, 'coordinator listening');

  return {
    url,
    http,
    io,
    store,
    log,
    async close() {
      ready = false;
      dispatcher.stop();
      await revocations.stop();
      clearInterval(expirer);
      clearInterval(replicaSettler);
      clearTimeout(deferredWake);
      clearInterval(finalizer);
      network.stop();
      await canaries?.close();
      await new Promise<void>((resolve) => io.close(() => resolve()));
      await new Promise((resolve) => setTimeout(resolve, 50)); // let disconnect handlers finish their store updates
      http.closeAllConnections();
      await workers.close();
      // Leases of the sockets just closed go back to the queue before the store closes (this node's only).
      await store.releaseAllActiveLeases(Date.now(), node?.sessionPrefix);
      await signal?.close();
      await redis?.close();
      await storage.close();
    },
  };
}
