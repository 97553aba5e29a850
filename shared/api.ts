/**
 * REST payloads of /api/v1: zod schemas shared by the server (validation and
 * the OpenAPI document), the CLI and tests; the TypeScript types are inferred
 * from them, so the document and the code cannot drift apart.
 */
import { z } from 'zod';

export const JOB_STATUSES = ['queued', 'running', 'completed', 'failed', 'cancelled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export const JOB_TYPES = ['matmul', 'benchmark', 'inference'] as const;
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
    verification: z
      .enum(['freivalds', 'replication', 'recompute'])
      .describe("Freivalds' test on every tile (matmul), agreement of two contributors, or sampled rows recomputed by the coordinator (inference)"),
    progress: JobProgressSchema,
    shape: z.object({ m: z.number().int(), k: z.number().int(), n: z.number().int() }).describe('matmul: M×K · K×N → M×N; inference: M = batch, N = output values per sample, K = multiply-adds per output value'),
    tile: z.object({ rows: z.number().int(), cols: z.number().int() }),
    createdAt: z.string(),
    updatedAt: z.string(),
    completedAt: z.string().optional(),
    reason: z.string().optional().describe('why the job failed or was cancelled'),
    resultDeleted: z.boolean().optional().describe('the result expired or was deleted by its owner'),
    replication: z
      .object({
        awaitingSecondOpinion: z.number().int().describe('shards whose first result is parked until an independent contributor (another identity, on another network) agrees'),
        waitingSince: z.string().optional().describe('when the oldest of them was parked'),
        replicaWaitSeconds: z.number().int().optional().describe('after this long a parked tile that passed Freivalds’ check is assembled on that check alone (the requester allowed it)'),
        note: z.string().optional().describe('what the wait means for this job now'),
      })
      .optional()
      .describe('verification=replication: the second opinions this job is waiting for'),
    fromBannedContributors: z
      .object({
        shards: z.number().int(),
        contributors: z.number().int(),
        regions: z
          .array(z.object({ row0: z.number().int(), col0: z.number().int(), rows: z.number().int(), cols: z.number().int() }))
          .describe('where those results sit in the result (rows row0… and columns col0…; inference: samples row0…), at most 1000'),
      })
      .optional()
      .describe(
        'verified shards whose result came from a contributor banned since. Each passed its own check when it was accepted (matmul: Freivalds, with its 2⁻²⁰ bound); while the job runs, those accepted on a sampled inference check are computed again. After the job ends its inputs are gone: to have these recomputed, submit those rows again',
      ),
    inference: z
      .object({
        model: z.object({ sha256: z.string(), bytes: z.number().int(), opset: z.number().int(), nodes: z.number().int() }),
        inputs: z.array(z.object({ name: z.string(), dims: z.array(z.number().int()) })),
        outputs: z.array(z.object({ name: z.string(), dims: z.array(z.number().int()) })),
        samplesPerShard: z.number().int(),
        gflopPerSample: z.number(),
        tolerance: z.object({ abs: z.number(), rel: z.number() }),
        checksPerShard: z.number().int().describe('verification=recompute: samples of each shard the coordinator recomputes, drawn after the shard came back'),
        residualRisk: z
          .number()
          .describe(
            'verification=recompute: probability that a shard with exactly one altered sample passes its check, (samples − checks) / samples; every altered sample caught costs its sender a strike. verification=replication: 0 unless two independent contributors return the same altered sample',
          ),
      })
      .optional()
      .describe('inference jobs: the model (its weights package by hash), the batch shapes and how results are checked'),
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
    status: z.enum(['active', 'quarantined', 'banned']).describe('quarantined: it has strikes and is tested with canaries more often; banned: three strikes'),
    strikes: z.number().int().describe('failed checks and protocol violations not yet forgiven (one is forgiven per 50 verified results); 3 bans'),
    trustLevel: z
      .enum(['new', 'established', 'trusted'])
      .describe('from verified work: established after 10 verified results, trusted after enough GFLOP over several jobs and hours and passed canaries; any strike means new. It sets only how often canaries come, never which checks run'),
    probation: z.boolean().describe('minted from a network where an identity was banned: new until trusted, at double the thresholds'),
    verifiedJobs: z.number().int().describe('distinct jobs its verified results span'),
    canariesPassed: z.number().int(),
    firstVerifiedAt: z.string().nullable().describe('its first verified result; trust needs hours since then'),
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

/**
 * A whole number sent as text (a form field, a query parameter): decimal
 * digits with an optional minus sign, nothing else. Number() would also read
 * "0x5", "1e1", " 5" and "" (as 0); a requester who sent those meant
 * something we cannot guess, so they are refused with the field's name.
 */
export const decimalIntText = (name: string, min: number, max: number, dflt: number) =>
  z
    .string({ message: `${name} must be a whole number, sent once` })
    .regex(/^-?[0-9]{1,15}$/, `${name} must be a number: a whole number in decimal digits, like ${dflt}`)
    .describe(`whole number from ${min} to ${max} in decimal digits; default ${dflt}`)
    .transform((text) => Number(text) + 0) // + 0: "-0" is 0
    .pipe(z.number().int().min(min, `${name}: at least ${min}`).max(max, `${name}: at most ${max}`))
    .default(dflt);

const priorityText = () => decimalIntText('priority', -10, 10, 0);

/** Form fields of POST /api/v1/jobs besides the files. */
export const SubmitFieldsSchema = z
  .object({
    type: z.enum(JOB_TYPES, { message: `one of: ${JOB_TYPES.join(', ')}` }),
    priority: priorityText(),
    verification: z.enum(['freivalds', 'replication']).default('freivalds'),
    replicaWait: decimalIntText('replicaWait', 0, 604_800, 0).describe(
      'verification=replication only: seconds a tile that passed Freivalds’ check waits for a second contributor before it is assembled on that check alone; 0 (default): it waits however long it takes',
    ),
  })
  .refine((f) => f.replicaWait === 0 || f.verification === 'replication', {
    message: 'replicaWait applies only to verification=replication: drop it, or add verification=replication',
    path: ['replicaWait'],
  });

const positiveIntText = decimalIntText;

/** The most samples per shard a requester can have recomputed: each is a full forward pass on the coordinator's CPU. */
export const MAX_INFERENCE_CHECKS = 64;

/** Form fields of POST /api/v1/jobs with type=inference (files: model, and one .npy per model input). */
export const InferenceFieldsSchema = z.object({
  type: z.literal('inference'),
  priority: priorityText(),
  verification: z.enum(['recompute', 'replication'], { message: 'one of: recompute, replication' }).default('recompute'),
  checks: decimalIntText('checks', 0, MAX_INFERENCE_CHECKS, 0).describe(
    `verification=recompute: samples of each returned shard the coordinator recomputes (1 to ${MAX_INFERENCE_CHECKS}, at most the shard's samples); 0 (default): the coordinator's setting, TESSERA_INFERENCE_CHECKS`,
  ),
});

/** Form fields of POST /api/v1/jobs with type=benchmark (no files). */
export const BenchmarkFieldsSchema = z.object({
  kernel: z.string().describe('a configuration id (shared/matmul-configs.ts), or "autotuned" for each contributor’s tuned choice'),
  sizes: z.string().optional().describe('square sizes, comma-separated: "256,512,1024"'),
  shapes: z.string().optional().describe('M×K×N shapes, comma-separated: "1000x700x1300"'),
  contributors: positiveIntText('contributors', 1, 256, 8).describe('at most this many distinct contributors run it'),
  reps: positiveIntText('reps', 1, 50, 5),
  warmup: positiveIntText('warmup', 0, 10, 1),
  wait: positiveIntText('wait', 5, 86_400, 600).describe('seconds to wait for contributors; the job then completes with the runs it has'),
  priority: priorityText(),
});

const Spread = z.object({ median: z.number(), min: z.number(), max: z.number() });

export const BenchmarkReportSchema = z
  .object({
    jobId: z.string(),
    status: z.enum(JOB_STATUSES),
    kernel: z.string(),
    shapes: z.array(z.object({ m: z.number().int(), k: z.number().int(), n: z.number().int() })),
    warmup: z.number().int(),
    reps: z.number().int(),
    contributorsWanted: z.number().int(),
    contributorsRan: z.number().int(),
    what: z.string().describe('what the figures include and how runs were checked'),
    groups: z
      .array(
        z.object({
          vendor: z.string(),
          architecture: z.string(),
          contributors: z.number().int(),
          shapes: z.array(
            z.object({
              m: z.number().int(),
              k: z.number().int(),
              n: z.number().int(),
              samples: z.number().int().describe('contributors with a timing at this shape'),
              gflops: Spread.extend({ mean: z.number(), stdev: z.number() }).describe('across contributors: median of each one’s runs'),
              configs: z.array(z.string()).describe('configurations that ran (differs per contributor for "autotuned")'),
            }),
          ),
        }),
      )
      .describe('runs grouped by GPU vendor and architecture'),
    runs: z.array(
      z.object({
        contributorId: z.string(),
        adapter: z.object({ vendor: z.string(), architecture: z.string(), device: z.string(), description: z.string() }),
        agent: z.string(),
        shapes: z.array(
          z.object({
            m: z.number().int(),
            k: z.number().int(),
            n: z.number().int(),
            config: z.string().optional(),
            runs: z.number().int().optional(),
            wallMs: Spread.optional(),
            gpuMs: Spread.optional(),
            gflops: z.number().optional().describe('2·M·N·K / median wall-clock ms'),
            gpuGflops: z.number().optional(),
            error: z.string().optional(),
          }),
        ),
      }),
    ),
  })
  .meta({ id: 'BenchmarkReport' });
export type BenchmarkReport = z.infer<typeof BenchmarkReportSchema>;

export const BenchmarkListSchema = z.object({ benchmarks: z.array(BenchmarkReportSchema.omit({ runs: true })) }).meta({ id: 'BenchmarkList' });
export type BenchmarkList = z.infer<typeof BenchmarkListSchema>;

export const ListQuerySchema = z.object({ limit: decimalIntText('limit', 1, 1000, 100) });

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
