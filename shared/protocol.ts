/**
 * Contributor protocol, version 1: the Socket.IO event maps shared by the
 * coordinator, the browser worker and simulated contributors, plus zod schemas
 * for every message that enters the coordinator. docs/protocol.md describes it
 * for third-party agents.
 */
import { z } from 'zod';

export const PROTOCOL_VERSION = 1;

/** Largest result a contributor may send in one message (a 2048×2048 float32 tile). */
export const MAX_RESULT_BYTES = 16 * 1024 * 1024;

export const ProtocolErrorCode = z.enum([
  'BAD_MESSAGE',
  'PROTOCOL_VERSION',
  'NOT_INTRODUCED',
  'UNKNOWN_TOKEN',
  'LEASE_UNKNOWN',
  'LEASE_EXPIRED',
  'SHAPE_MISMATCH',
  'VERIFICATION_FAILED',
  'JOB_CANCELLED',
  'RATE_LIMITED',
  'BANNED',
  'BAD_NAME',
  'INTERNAL',
]);
export type ProtocolErrorCode = z.infer<typeof ProtocolErrorCode>;

export interface ProtocolError {
  code: ProtocolErrorCode;
  message: string;
}

const finitePositiveInt = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);

export const AdapterInfoSchema = z.object({
  vendor: z.string().max(200).default(''),
  architecture: z.string().max(200).default(''),
  device: z.string().max(200).default(''),
  description: z.string().max(500).default(''),
});
export type AdapterInfo = z.infer<typeof AdapterInfoSchema>;

export const DeviceLimitsSchema = z.object({
  maxStorageBufferBindingSize: finitePositiveInt,
  maxBufferSize: finitePositiveInt,
  maxComputeWorkgroupStorageSize: finitePositiveInt.optional(),
  maxComputeInvocationsPerWorkgroup: finitePositiveInt.optional(),
});
export type DeviceLimits = z.infer<typeof DeviceLimitsSchema>;

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
});
export type Hello = z.input<typeof HelloSchema>;

export type HelloReply =
  | { ok: true; contributorId: string; token: string; protocol: number }
  | { ok: false; error: ProtocolError };

export const LeaseRequestSchema = z.object({
  /** How many shards the contributor wants to hold at once. */
  max: z.number().int().min(1).max(8).default(1),
});
export type LeaseRequest = z.input<typeof LeaseRequestSchema>;

export interface BlobRef {
  sha256: string;
  bytes: number;
  /** Path on the coordinator, relative to its origin: `/api/v1/blobs/<sha256>`. */
  url: string;
}

export interface MatmulLease {
  kind: 'matmul';
  shardId: string;
  leaseToken: string;
  jobId: string;
  /** C tile = A panel (rows×k) · B panel (k×cols), all row-major float32. */
  rows: number;
  cols: number;
  k: number;
  a: BlobRef;
  b: BlobRef;
  /** Epoch milliseconds after which the lease lapses and the shard is reassigned. */
  deadline: number;
}
export type Lease = MatmulLease;

export type LeaseReply =
  | { ok: true; leases: Lease[]; /** when no work was available: ask again after this long, or on `work:available` */ retryAfterMs?: number }
  | { ok: false; error: ProtocolError };

const isBytes = (v: unknown): v is Uint8Array | ArrayBuffer => v instanceof Uint8Array || v instanceof ArrayBuffer;

export const ResultSchema = z.object({
  shardId: z.string().min(1).max(64),
  leaseToken: z.string().min(1).max(128),
  /** Milliseconds the contributor spent computing, for its throughput estimate. */
  computeMs: z.number().nonnegative().max(86_400_000).optional(),
  /** The C tile: rows×cols little-endian float32, row-major. */
  c: z.custom<Uint8Array | ArrayBuffer>(isBytes, { message: 'c must be binary (ArrayBuffer / Buffer)' }),
});
export type ResultMessage = z.input<typeof ResultSchema>;

/**
 * `verified`: the tile passed verification and was assembled (or was a canary that passed).
 * `pending`: accepted, awaiting a replica from another contributor (replicated jobs); credit comes when it agrees.
 */
export type ResultReply = { ok: true; status: 'verified' | 'pending' } | { ok: false; error: ProtocolError };

export const ReleaseSchema = z.object({
  shardId: z.string().min(1).max(64),
  leaseToken: z.string().min(1).max(128),
});
export type ReleaseMessage = z.input<typeof ReleaseSchema>;
export type ReleaseReply = { ok: true } | { ok: false; error: ProtocolError };

export const ProfileSchema = z.object({
  /** Display name on public pages; null to be anonymous again. Checked by shared/display-name.ts. */
  name: z.string().max(200).nullable().optional(),
  team: z.string().max(200).nullable().optional(),
});
export type ProfileMessage = z.input<typeof ProfileSchema>;
export type ProfileReply = { ok: true; name: string | null; team: string | null } | { ok: false; error: ProtocolError };

export interface ClientToServerEvents {
  hello: (msg: Hello, ack: (reply: HelloReply) => void) => void;
  'lease:request': (msg: LeaseRequest, ack: (reply: LeaseReply) => void) => void;
  'lease:result': (msg: ResultMessage, ack: (reply: ResultReply) => void) => void;
  'lease:release': (msg: ReleaseMessage, ack: (reply: ReleaseReply) => void) => void;
  /** Sets the contributor's public name and team (after hello). */
  profile: (msg: ProfileMessage, ack: (reply: ProfileReply) => void) => void;
}

export interface ServerToClientEvents {
  /** New work was queued: idle contributors should send `lease:request`. */
  'work:available': () => void;
  /** The shard's job was cancelled: stop working on it, do not send its result. */
  'lease:revoked': (msg: { shardId: string; reason: string }) => void;
}

export type InterServerEvents = Record<string, never>;

/** Formats the first zod issue as "path: message" for a one-line error. */
export function describeZodError(err: z.ZodError): string {
  const issue = err.issues[0];
  if (!issue) return 'invalid message';
  const path = issue.path.length ? issue.path.join('.') : 'message';
  return `${path}: ${issue.message}`;
}
