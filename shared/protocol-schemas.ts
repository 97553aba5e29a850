/**
 * zod schemas for every contributor message that enters the coordinator
 * (types in protocol.ts are inferred from them).
 */
import { z } from 'zod';
import { MATMUL_CONFIG_IDS } from './matmul-configs';

const isBytes = (v: unknown): v is Uint8Array | ArrayBuffer => v instanceof Uint8Array || v instanceof ArrayBuffer;

const finitePositiveInt = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);

export const AdapterInfoSchema = z.object({
  vendor: z.string().max(200).default(''),
  architecture: z.string().max(200).default(''),
  device: z.string().max(200).default(''),
  description: z.string().max(500).default(''),
});

export const DeviceLimitsSchema = z.object({
  maxStorageBufferBindingSize: finitePositiveInt,
  maxBufferSize: finitePositiveInt,
  maxComputeWorkgroupStorageSize: finitePositiveInt.optional(),
  maxComputeInvocationsPerWorkgroup: finitePositiveInt.optional(),
});

const configId = z.enum(MATMUL_CONFIG_IDS);
const tunedGflops = z.number().positive().max(1e6);

/** The matmul configuration a contributor's tuning picked per tile size class, and its speed there. */
export const KernelTuningSchema = z.object({
  configs: z.object({ small: configId, medium: configId, large: configId }),
  gflops: z.object({ small: tunedGflops, medium: tunedGflops, large: tunedGflops }),
});

export const HelloSchema = z.object({
  protocol: z.number().int(),
  /** Identity token from an earlier session; omitted on first join. */
  token: z.string().min(16).max(128).optional(),
  agent: z.object({
    kind: z.enum(['page', 'agent', 'simulated']),
    userAgent: z.string().max(500).default(''),
  }),
  adapter: AdapterInfoSchema,
  limits: DeviceLimitsSchema,
  /** A short self-benchmark run before joining: sizes the first leases until real throughput is measured. */
  benchmark: z
    .object({
      matmulGflops: z.number().positive().max(1e6),
    })
    .optional(),
  /** The contributor's autotuned kernels (shared/matmul-configs.ts). */
  kernels: KernelTuningSchema.optional(),
  /** Lease kinds this contributor can run; older agents know only matmul. */
  accepts: z.array(z.enum(['matmul', 'benchmark', 'inference'])).max(4).default(['matmul']),
  /** Model packages (sha256) the contributor keeps from earlier sessions: their jobs come to it first. */
  models: z.array(z.string().regex(/^[0-9a-f]{64}$/, 'a model is named by its sha256 (64 lowercase hex digits)')).max(64).default([]),
});

export const LeaseRequestSchema = z.object({
  /** How many shards the contributor wants to hold at once. */
  max: z.number().int().min(1).max(8).default(1),
});

export const ResultSchema = z.object({
  shardId: z.string().min(1).max(64),
  leaseToken: z.string().min(1).max(128),
  /** Milliseconds the contributor spent computing, for its throughput estimate. */
  computeMs: z.number().nonnegative().max(86_400_000).optional(),
  /** The C tile: rows×cols little-endian float32, row-major. */
  c: z.custom<Uint8Array | ArrayBuffer>(isBytes, { message: 'c must be binary (ArrayBuffer / Buffer)' }),
});

export const ReleaseSchema = z.object({
  shardId: z.string().min(1).max(64),
  leaseToken: z.string().min(1).max(128),
});

export const ProfileSchema = z.object({
  /** Display name on public pages; null to be anonymous again. Checked by shared/display-name.ts. */
  name: z.string().max(200).nullable().optional(),
  team: z.string().max(200).nullable().optional(),
});

/** Formats the first zod issue as "path: message" for a one-line error. */
export function describeZodError(err: z.ZodError): string {
  const issue = err.issues[0];
  if (!issue) return 'invalid message';
  const path = issue.path.length ? issue.path.join('.') : 'message';
  return `${path}: ${issue.message}`;
}

