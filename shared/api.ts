/**
 * REST payloads of /api/v1: zod schemas shared by the server (validation and
 * the OpenAPI document), the CLI and tests; the TypeScript types are inferred
 * from them, so the document and the code cannot drift apart.
 */
import { z } from 'zod';

export const JOB_STATUSES = ['queued', 'running', 'completed', 'failed', 'cancelled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export const JOB_TYPES = ['matmul'] as const;
export type JobType = (typeof JOB_TYPES)[number];

export const JobProgressSchema = z
  .object({
    total: z.number().int().describe('shards in the job'),
    done: z.number().int().describe('shards whose result came back at least once'),
    verified: z.number().int().describe('shards that passed verification and were assembled'),
  })
  .meta({ id: 'JobProgress' });
export type JobProgress = z.infer<typeof JobProgressSchema>;

export const JobViewSchema = z
  .object({
    id: z.string(),
    type: z.enum(JOB_TYPES),
    status: z.enum(JOB_STATUSES),
    priority: z.number().int().describe('-10..10; higher runs first; equal priorities share contributors evenly'),
    verification: z.enum(['freivalds', 'replication']).describe("Freivalds' test on every tile, or agreement of two contributors"),
    progress: JobProgressSchema,
    shape: z.object({ m: z.number().int(), k: z.number().int(), n: z.number().int() }).describe('M×K · K×N → M×N'),
    tile: z.object({ rows: z.number().int(), cols: z.number().int() }),
    createdAt: z.string(),
    updatedAt: z.string(),
    completedAt: z.string().optional(),
    reason: z.string().optional().describe('why the job failed or was cancelled'),
    resultDeleted: z.boolean().optional().describe('the result expired or was deleted by its owner'),
    links: z.object({ self: z.string(), result: z.string(), events: z.string() }),
  })
  .meta({ id: 'Job' });
export type JobView = z.infer<typeof JobViewSchema>;

export const JobListSchema = z.object({ jobs: z.array(JobViewSchema) }).meta({ id: 'JobList' });
export type JobList = z.infer<typeof JobListSchema>;

export const ApiErrorSchema = z
  .object({ error: z.object({ code: z.string(), message: z.string().describe('what to fix') }) })
  .meta({ id: 'Error' });
export type ApiErrorBody = z.infer<typeof ApiErrorSchema>;

export const ContributorStatsSchema = z
  .object({
    id: z.string(),
    status: z.enum(['active', 'quarantined', 'banned']).describe('quarantined: every result is double-checked'),
    verifiedShards: z.number().int(),
    rejectedShards: z.number().int(),
    credits: z.number().describe('one credit per GFLOP of verified work; rejected work earns none'),
    verifiedGflop: z.number(),
    since: z.string(),
    name: z.string().nullable().describe('display name; null when anonymous'),
    team: z.string().nullable(),
  })
  .meta({ id: 'ContributorStats' });
export type ContributorStats = z.infer<typeof ContributorStatsSchema>;

/** Form fields of POST /api/v1/jobs besides the files. */
export const SubmitFieldsSchema = z.object({
  type: z.enum(JOB_TYPES, { message: `one of: ${JOB_TYPES.join(', ')}` }),
  priority: z.coerce.number().int().min(-10).max(10).default(0),
  verification: z.enum(['freivalds', 'replication']).default('freivalds'),
});

export const ListQuerySchema = z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) });

const LeaderSchema = z.object({ rank: z.number().int(), name: z.string().describe('display name, or "anonymous-" and an id prefix'), team: z.string().nullable(), credits: z.number() });
const TeamLeaderSchema = z.object({ rank: z.number().int(), name: z.string(), members: z.number().int(), credits: z.number() });
const Boards = <T extends z.ZodType>(row: T) => z.object({ day: z.array(row), week: z.array(row), all: z.array(row) });

export const LeaderboardSchema = z
  .object({ updatedAt: z.string(), contributors: Boards(LeaderSchema), teams: Boards(TeamLeaderSchema) })
  .meta({ id: 'Leaderboard' });
export type Leaderboard = z.infer<typeof LeaderboardSchema>;

export const NetworkSnapshotSchema = z
  .object({
    at: z.string(),
    online: z.number().int().describe('contributors connected now'),
    byVendor: z.record(z.string(), z.number().int()).describe('contributors online by GPU vendor'),
    gflopsNow: z.number().describe('verified GFLOPS over the last 30 s'),
    jobsCompleted: z.number().int(),
    series: z.array(z.object({ t: z.number().describe('epoch seconds, start of the minute'), gflops: z.number() })).describe('verified GFLOPS per minute, last 24 h'),
    leaderboard: LeaderboardSchema,
  })
  .meta({ id: 'NetworkSnapshot' });
export type NetworkSnapshot = z.infer<typeof NetworkSnapshotSchema>;
