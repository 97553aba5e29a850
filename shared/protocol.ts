/**
 * Contributor protocol, version 1: the Socket.IO event maps shared by the
 * coordinator, the browser worker and simulated contributors. The zod schemas
 * that validate every message entering the coordinator are in
 * protocol-schemas.ts (kept apart so the page's worker does not bundle zod).
 * docs/protocol.md describes the protocol for third-party agents.
 */
import type { z } from 'zod';
import type { AdapterInfoSchema, DeviceLimitsSchema, HelloSchema, LeaseRequestSchema, ProfileSchema, ReleaseSchema, ResultSchema } from './protocol-schemas';

export const PROTOCOL_VERSION = 1;

/** Largest result a contributor may send in one message (a 2048×2048 float32 tile). */
export const MAX_RESULT_BYTES = 16 * 1024 * 1024;

export const PROTOCOL_ERROR_CODES = [
  'BAD_MESSAGE',
  'PROTOCOL_VERSION',
  'NOT_INTRODUCED',
  'LEASE_UNKNOWN',
  'LEASE_EXPIRED',
  'SHAPE_MISMATCH',
  'VERIFICATION_FAILED',
  'JOB_CANCELLED',
  'RATE_LIMITED',
  'BANNED',
  'BAD_NAME',
  'INTERNAL',
] as const;
export type ProtocolErrorCode = (typeof PROTOCOL_ERROR_CODES)[number];

export interface ProtocolError {
  code: ProtocolErrorCode;
  message: string;
}

export type AdapterInfo = z.infer<typeof AdapterInfoSchema>;

export type DeviceLimits = z.infer<typeof DeviceLimitsSchema>;

export type Hello = z.input<typeof HelloSchema>;

export type HelloReply =
  | { ok: true; contributorId: string; token: string; protocol: number }
  | { ok: false; error: ProtocolError };

export type LeaseRequest = z.input<typeof LeaseRequestSchema>;

export interface BlobRef {
  sha256: string;
  bytes: number;
  /**
   * Signed, expiring path on the coordinator, relative to its origin:
   * `/api/v1/blobs/<sha256>?exp=<unix seconds>&sig=<signature>`. Use it exactly as given,
   * soon (it lapses a few minutes after the lease's deadline); cache the bytes by `sha256`, not by URL.
   */
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
/**
 * A network benchmark run: time `kernel` at each shape on seeded inputs
 * (shared/seeded.ts), report the timings and the probed elements of C by
 * `PUT /api/v1/leases/<leaseToken>/benchmark`.
 */
export interface BenchmarkLease {
  kind: 'benchmark';
  shardId: string;
  leaseToken: string;
  jobId: string;
  kernel: string;
  shapes: { m: number; k: number; n: number }[];
  warmup: number;
  reps: number;
  seed: number;
  deadline: number;
}

/**
 * Inference on a batch range: run the model (a package, shared/model-package.ts, content-addressed:
 * keep it and never fetch the same sha256 twice) on `rows` samples of `input` (each graph input's
 * rows in graph order), and send back rows × outputsPerSample float32 (per sample, every output
 * in graph order; shared/inference-job.ts) like a matmul tile.
 */
export interface InferenceLease {
  kind: 'inference';
  shardId: string;
  leaseToken: string;
  jobId: string;
  rows: number;
  outputsPerSample: number;
  model: BlobRef;
  input: BlobRef;
  deadline: number;
}

export type Lease = MatmulLease | BenchmarkLease | InferenceLease;

export type LeaseReply =
  | { ok: true; leases: Lease[]; /** when no work was available: ask again after this long, or on `work:available` */ retryAfterMs?: number }
  | { ok: false; error: ProtocolError };

export type ResultMessage = z.input<typeof ResultSchema>;

/**
 * `verified`: the tile passed verification and was assembled (or was a canary that passed).
 * `pending`: accepted, awaiting a replica from another contributor (replicated jobs); credit comes when it agrees.
 */
/**
 * What a contributor hears when its result fails any check (VERIFICATION_FAILED):
 * the category only, the same for a canary, a real shard and a benchmark run.
 * The row, element and tolerance go to the operator's log; telling them to the
 * sender would teach a cheater how close it came.
 */
export const REJECTED_MESSAGE = 'result rejected: it failed verification';

export type ResultReply = { ok: true; status: 'verified' | 'pending' } | { ok: false; error: ProtocolError };

/** `accepted`: the run's answers checked out and its timings count; `declined`: the device could run none of the shapes. */
export type BenchmarkReply = { ok: true; status: 'accepted' | 'declined' } | { ok: false; error: ProtocolError };

export type ReleaseMessage = z.input<typeof ReleaseSchema>;
export type ReleaseReply = { ok: true } | { ok: false; error: ProtocolError };

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

