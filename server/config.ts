import { availableParallelism, hostname } from 'node:os';
import { resolve } from 'node:path';
import { z } from 'zod';
import type { IdentityLimitsConfig } from './trust/identity-limits';
import type { TrustThresholds } from './trust/reputation';

const int = (def: number, min = 0) => z.coerce.number().int().min(min).default(def);
/** An optional setting where an empty value (`VAR=` in a unit file) means unset. */
const optional = (schema: z.ZodString) => z.preprocess((v) => (v === '' ? undefined : v), schema.optional());

const EnvSchema = z.object({
  PORT: int(8080, 0).pipe(z.number().max(65535)),
  HOST: z.string().default('0.0.0.0'),
  TESSERA_DATA_DIR: z.string().default('./data'),
  TESSERA_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  TESSERA_MAX_UPLOAD_BYTES: int(1024 ** 3, 1024),
  TESSERA_MAX_CONCURRENT_UPLOADS: int(8, 1),
  TESSERA_KEY_MAX_CONCURRENT_UPLOADS: int(4, 1),
  TESSERA_UPLOAD_IDLE_SECONDS: z.coerce.number().positive().max(3600).default(60),
  TESSERA_MAX_DIM: int(65536, 1),
  TESSERA_MAX_ELEMENTS: int(2 ** 28, 1),
  TESSERA_MAX_PANEL_BYTES: int(16 * 1024 ** 2, 4096),
  TESSERA_TARGET_TILES: int(32, 1),
  TESSERA_LEASE_BASE_MS: int(30_000, 100),
  TESSERA_LEASE_SWEEP_MS: int(1_000, 10),
  TESSERA_HELLO_TIMEOUT_MS: int(10_000, 100),
  TESSERA_MAX_SHARD_FAILURES: int(5, 1),
  TESSERA_MAX_LEASES_PER_CONTRIBUTOR: int(4, 1),
  TESSERA_SPECULATE_AFTER_MS: int(20_000, 0),
  TESSERA_CANARIES: z.enum(['on', 'off']).default('on'),
  TESSERA_TILES_FOLLOW_KERNELS: z.enum(['on', 'off']).default('on'),
  TESSERA_INFERENCE_SHARD_SECONDS: z.coerce.number().positive().max(3600).default(2),
  TESSERA_INFERENCE_CHECKS: int(1, 1),
  TESSERA_MODEL_AFFINITY_MS: int(3_000, 0),
  // 0: one verification thread per core (os.availableParallelism()).
  TESSERA_VERIFY_THREADS: int(0, 0).pipe(z.number().max(256)),
  TESSERA_VERIFY_TASK_SECONDS: z.coerce.number().positive().max(3600).default(30),
  TESSERA_PANEL_CACHE_BYTES: int(512 * 1024 ** 2, 0),
  TESSERA_KEY_MAX_JOBS: int(16, 1),
  TESSERA_KEY_MAX_STORED_BYTES: int(20 * 1024 ** 3, 1024),
  TESSERA_KEY_MAX_UPLOAD_BYTES: int(1024 ** 3, 1024),
  TESSERA_KEY_REQUESTS_PER_MINUTE: int(600, 1),
  TESSERA_RESULT_TTL_HOURS: z.coerce.number().positive().default(168),
  TESSERA_CORS_ORIGINS: z.string().default(''),
  TESSERA_TRUST_PROXY: z.string().default('loopback'),
  TESSERA_NEW_IDENTITIES_PER_HOUR: int(20, 1),
  TESSERA_NEW_IDENTITIES_PER_IP_HOUR: int(5, 1),
  TESSERA_TRUSTED_AFTER_GFLOP: z.coerce.number().min(0).default(50),
  TESSERA_TRUSTED_AFTER_JOBS: int(3, 0),
  TESSERA_TRUSTED_AFTER_HOURS: z.coerce.number().min(0).default(6),
  TESSERA_TRUSTED_AFTER_CANARIES: int(5, 0),
  TESSERA_METRICS_TOKEN: z.string().default(''),
  TESSERA_RATE_LIMIT_PER_SECOND: int(50, 1),
  TESSERA_RATE_LIMIT_BURST: int(100, 1),
  TESSERA_DATABASE_URL: optional(z.string().regex(/^(postgres|postgresql):\/\//, 'must be a postgres:// URL (leave it unset for the embedded SQLite store)')),
  TESSERA_REDIS_URL: optional(z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')),
  // The node id prefixes this node's contributor sessions in the shared store, so ':' is not allowed in it.
  TESSERA_NODE_ID: optional(z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, ".", "_" and "-" only, at most 64')),
  TESSERA_FINALIZE_POLL_MS: int(5_000, 100),
  TESSERA_BLOB_SECRET: optional(z.string().min(32, 'must be at least 32 characters (e.g. `openssl rand -base64 32`)')),
});

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  logLevel: z.infer<typeof EnvSchema>['TESSERA_LOG_LEVEL'];
  maxUploadBytes: number;
  /** Job submissions being received or checked at once, over all keys and per key; more are answered 429. */
  maxConcurrentUploads: { total: number; perKey: number };
  /** An upload from which nothing arrives for this long is cut off (408). */
  uploadIdleMs: number;
  maxDim: number;
  maxElements: number;
  maxPanelBytes: number;
  targetTiles: number;
  leaseBaseMs: number;
  leaseSweepMs: number;
  helloTimeoutMs: number;
  maxShardFailures: number;
  maxLeasesPerContributor: number;
  speculateAfterMs: number;
  canaries: boolean;
  /** Cut new jobs' tiles no smaller than the size at which online contributors' tuned kernels run efficiently. */
  tilesFollowKernels: boolean;
  /** Inference shards are sized so the median online contributor computes one in about this long. */
  inferenceShardSeconds: number;
  /** Samples of each inference shard the coordinator recomputes on its CPU to verify it. */
  inferenceChecks: number;
  /** For this long after an inference job is queued, an idle contributor holding its model goes first. */
  modelAffinityMs: number;
  /** Worker threads that verify results (and do other heavy work) off the event loop. */
  verifyThreads: number;
  /** Longest one verification task may run on its thread; past it the shard is requeued without a strike. */
  verifyTaskMs: number;
  /** Input panels kept in memory for verification (shared with its threads), in bytes. */
  panelCacheBytes: number;
  /** Limits given to keys created without their own (and to the local key). */
  keyDefaults: { maxConcurrentJobs: number; maxStoredBytes: number; maxUploadBytes: number; requestsPerMinute: number };
  resultTtlMs: number;
  /** Origins allowed to call the REST API and open the contributor channel from another site; empty: same origin only. */
  corsOrigins: string[];
  /** Express "trust proxy" setting: which hops' X-Forwarded-* headers to believe (HTTP and the contributor channel). */
  trustProxy: string;
  /** Identities a `hello` without a known token may mint per hour, per network (/24, /64; cluster-wide) and per address (this node). */
  newIdentities: IdentityLimitsConfig;
  /** What a contributor must have done to become trusted (doubled on probation). */
  trustThresholds: TrustThresholds;
  /** When set, /metrics requires `Authorization: Bearer <token>`. */
  metricsToken: string;
  rateLimit: { perSecond: number; burst: number };
  /**
   * Networked mode: several coordinators share one PostgreSQL database (jobs, blobs, results) and,
   * optionally, one Redis (Socket.IO broadcasts, REST rate limits). Absent: embedded SQLite and local files.
   */
  cluster?: ClusterConfig;
  /** Key that signs the blob URLs in leases; absent: a random key kept in the store (shared by every node on one database). */
  blobSecret?: string;
  /** Directory of the built contributor page; absent in tests that need no page. */
  clientDir?: string;
}

export interface ClusterConfig {
  databaseUrl: string;
  redisUrl?: string;
  /** This coordinator's name among the others; stable across its restarts, so it releases only its own old leases. */
  nodeId: string;
  /** How often each node looks for jobs whose assembly a dead node left undone. */
  finalizePollMs: number;
}

export class ConfigError extends Error {}

/** Reads configuration from environment variables (documented in README.md). */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(`invalid environment variable ${issue.path.join('.')}: ${issue.message}`);
  }
  const e = parsed.data;
  return {
    port: e.PORT,
    host: e.HOST,
    dataDir: resolve(e.TESSERA_DATA_DIR),
    logLevel: e.TESSERA_LOG_LEVEL,
    maxUploadBytes: e.TESSERA_MAX_UPLOAD_BYTES,
    maxConcurrentUploads: { total: e.TESSERA_MAX_CONCURRENT_UPLOADS, perKey: e.TESSERA_KEY_MAX_CONCURRENT_UPLOADS },
    uploadIdleMs: e.TESSERA_UPLOAD_IDLE_SECONDS * 1000,
    maxDim: e.TESSERA_MAX_DIM,
    maxElements: e.TESSERA_MAX_ELEMENTS,
    maxPanelBytes: e.TESSERA_MAX_PANEL_BYTES,
    targetTiles: e.TESSERA_TARGET_TILES,
    leaseBaseMs: e.TESSERA_LEASE_BASE_MS,
    leaseSweepMs: e.TESSERA_LEASE_SWEEP_MS,
    helloTimeoutMs: e.TESSERA_HELLO_TIMEOUT_MS,
    maxShardFailures: e.TESSERA_MAX_SHARD_FAILURES,
    maxLeasesPerContributor: e.TESSERA_MAX_LEASES_PER_CONTRIBUTOR,
    speculateAfterMs: e.TESSERA_SPECULATE_AFTER_MS,
    canaries: e.TESSERA_CANARIES === 'on',
    tilesFollowKernels: e.TESSERA_TILES_FOLLOW_KERNELS === 'on',
    inferenceShardSeconds: e.TESSERA_INFERENCE_SHARD_SECONDS,
    inferenceChecks: e.TESSERA_INFERENCE_CHECKS,
    modelAffinityMs: e.TESSERA_MODEL_AFFINITY_MS,
    verifyThreads: e.TESSERA_VERIFY_THREADS || availableParallelism(),
    verifyTaskMs: e.TESSERA_VERIFY_TASK_SECONDS * 1000,
    panelCacheBytes: e.TESSERA_PANEL_CACHE_BYTES,
    keyDefaults: {
      maxConcurrentJobs: e.TESSERA_KEY_MAX_JOBS,
      maxStoredBytes: e.TESSERA_KEY_MAX_STORED_BYTES,
      maxUploadBytes: e.TESSERA_KEY_MAX_UPLOAD_BYTES,
      requestsPerMinute: e.TESSERA_KEY_REQUESTS_PER_MINUTE,
    },
    resultTtlMs: e.TESSERA_RESULT_TTL_HOURS * 3_600_000,
    corsOrigins: e.TESSERA_CORS_ORIGINS.split(',').map((o) => o.trim()).filter(Boolean),
    trustProxy: e.TESSERA_TRUST_PROXY,
    newIdentities: { perNetworkHour: e.TESSERA_NEW_IDENTITIES_PER_HOUR, perIpHour: e.TESSERA_NEW_IDENTITIES_PER_IP_HOUR },
    trustThresholds: {
      gflop: e.TESSERA_TRUSTED_AFTER_GFLOP,
      jobs: e.TESSERA_TRUSTED_AFTER_JOBS,
      hours: e.TESSERA_TRUSTED_AFTER_HOURS,
      canaries: e.TESSERA_TRUSTED_AFTER_CANARIES,
    },
    metricsToken: e.TESSERA_METRICS_TOKEN,
    rateLimit: { perSecond: e.TESSERA_RATE_LIMIT_PER_SECOND, burst: e.TESSERA_RATE_LIMIT_BURST },
    ...(e.TESSERA_BLOB_SECRET ? { blobSecret: e.TESSERA_BLOB_SECRET } : {}),
    ...(e.TESSERA_DATABASE_URL ? { cluster: clusterConfig(e, e.TESSERA_DATABASE_URL) } : {}),
  };
}

function clusterConfig(e: z.infer<typeof EnvSchema>, databaseUrl: string): ClusterConfig {
  // Hostname and port: two nodes on one machine differ by port, and a node restarted in place keeps its name.
  const nodeId = e.TESSERA_NODE_ID ?? `${hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 50)}-${e.PORT}`;
  return { databaseUrl, ...(e.TESSERA_REDIS_URL ? { redisUrl: e.TESSERA_REDIS_URL } : {}), nodeId, finalizePollMs: e.TESSERA_FINALIZE_POLL_MS };
}
