import { z } from 'zod';
import { ApiErrorSchema, BenchmarkFieldsSchema, BenchmarkListSchema, BenchmarkReportSchema, ContributorStatsSchema, LeaderboardSchema, NetworkSnapshotSchema, JOB_TYPES, JobListSchema, JobProgressSchema, JobViewSchema, ListQuerySchema, SubmitFieldsSchema } from '../../shared/api';

type Json = Record<string, unknown>;

/** OpenAPI 3.0 schema objects do not allow JSON Schema's $id / $schema. */
function strip(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(strip);
  if (node && typeof node === 'object') {
    const out: Json = {};
    for (const [k, v] of Object.entries(node)) if (k !== '$id' && k !== '$schema') out[k] = strip(v);
    return out;
  }
  return node;
}

const ref = (id: string) => ({ $ref: `#/components/schemas/${id}` });
const json = (schema: Json, description: string) => ({ description, content: { 'application/json': { schema } } });
const error = (description: string) => json(ref('Error'), description);
const jobId = { name: 'id', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } };

function inputSchema(schema: z.ZodType): Json {
  return strip(z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'input', unrepresentable: 'any' })) as Json;
}

/**
 * The OpenAPI document of the REST API, built from the same zod schemas that
 * validate requests and type responses.
 */
export function buildOpenApi(version: string): Json {
  // Registering the schemas by id puts them in components; JobView refers to JobProgress by $ref.
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of [
    ['Job', JobViewSchema],
    ['JobProgress', JobProgressSchema],
    ['JobList', JobListSchema],
    ['Error', ApiErrorSchema],
    ['ContributorStats', ContributorStatsSchema],
    ['Leaderboard', LeaderboardSchema],
    ['NetworkSnapshot', NetworkSnapshotSchema],
    ['BenchmarkReport', BenchmarkReportSchema],
    ['BenchmarkList', BenchmarkListSchema],
  ] as const)
    registry.add(schema, { id });
  const components = strip(z.toJSONSchema(registry, { target: 'openapi-3.0', uri: (id) => `#/components/schemas/${id}` })) as { schemas: Json };
  const fields = inputSchema(SubmitFieldsSchema) as { properties: Json; required?: string[] };
  const listQuery = inputSchema(ListQuerySchema) as { properties: { limit: Json } };
  const benchFields = inputSchema(BenchmarkFieldsSchema) as { properties: Json };
  // One form serves every job type: the verification methods differ by type.
  fields.properties.verification = {
    type: 'string',
    enum: ['freivalds', 'replication', 'recompute'],
    description: 'matmul: freivalds (default) or replication; inference: recompute (default) or replication',
  };

  return {
    openapi: '3.0.3',
    info: {
      title: 'Tessera coordinator',
      version,
      description:
        'Submit matrix products to a volunteer GPU network. Tensors are NumPy .npy files (little-endian float32); every error is `{ "error": { "code", "message" } }`.',
    },
    servers: [{ url: '/' }],
    components: {
      schemas: components.schemas,
      securitySchemes: {
        contributorToken: { type: 'http', scheme: 'bearer', description: "a contributor's identity token (from hello)" },
        bearer: { type: 'http', scheme: 'bearer', description: 'an API key: `npm run keys -- create --name NAME`, or data/local-api-key' },
      },
    },
    security: [{ bearer: [] }],
    paths: {
      '/healthz': {
        get: { summary: 'Readiness', security: [], responses: { '200': { description: 'ready' }, '503': error('starting') } },
      },
      '/api/v1/jobs': {
        post: {
          summary: 'Submit a job',
          description:
            `type=${JOB_TYPES.join('|')}. matmul: files a (M×K) and b (K×N), float32 .npy in C or Fortran order; inputs must be finite. ` +
            'benchmark: no files; fields kernel, sizes and/or shapes, contributors, reps, warmup, wait — the kernel is timed on up to `contributors` distinct GPUs and the result is a BenchmarkReport. ' +
            'inference: file model (an ONNX model, float32, supported operators only) and one float32 .npy per model input, each named after the input (a one-input model also takes `input`); ' +
            'the first dimension is the batch, split into shards; verification recompute (default: the coordinator recomputes sampled rows) or replication. ' +
            'A model that cannot run gets a 400 naming every unsupported operator and its node.',
          requestBody: {
            required: true,
            content: {
              'multipart/form-data': {
                schema: {
                  type: 'object',
                  required: ['type'],
                  properties: {
                    ...fields.properties,
                    a: { type: 'string', format: 'binary', description: 'matmul: A (M×K)' },
                    b: { type: 'string', format: 'binary', description: 'matmul: B (K×N)' },
                    model: { type: 'string', format: 'binary', description: 'inference: the ONNX model' },
                    input: { type: 'string', format: 'binary', description: 'inference: the batch for a one-input model (otherwise one file per input, named after it)' },
                    ...Object.fromEntries(Object.entries(benchFields.properties).filter(([k]) => k !== 'priority')),
                  },
                },
              },
            },
          },
          responses: {
            '201': { ...json(ref('Job'), 'accepted'), headers: { Location: { schema: { type: 'string' }, description: 'the job URL' } } },
            '400': error('bad field or file'),
            '401': error('missing or invalid API key'),
            '413': error('too large, or over the storage quota'),
            '415': error('not multipart/form-data, or not float32'),
            '429': error('too many requests or too many jobs at once'),
          },
        },
        get: {
          summary: "The caller's jobs, newest first",
          parameters: [{ name: 'limit', in: 'query', required: false, schema: listQuery.properties.limit }],
          responses: { '200': json(ref('JobList'), 'jobs'), '400': error('bad query parameter'), '401': error('missing or invalid API key') },
        },
      },
      '/api/v1/jobs/{id}': {
        get: { summary: 'A job', parameters: [jobId], responses: { '200': json(ref('Job'), 'the job'), '404': error('no such job of yours') } },
        delete: {
          summary: 'Cancel a queued or running job; delete the stored result of a finished one',
          parameters: [jobId],
          responses: { '200': json(ref('Job'), 'the job after the change'), '404': error('no such job of yours') },
        },
      },
      '/api/v1/jobs/{id}/result': {
        get: {
          summary: 'The result: C as .npy (matmul), the outputs as .npy or .npz (inference), or the report so far (benchmark)',
          parameters: [jobId],
          responses: {
            '200': {
              description:
                'matmul: C (M×N) as a float32 .npy; inference: the single output as .npy, or several as .npz keyed by output name (numpy.load reads both); ' +
                'benchmark: the runs and their grouping by adapter, at any status',
              content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } }, 'application/json': { schema: ref('BenchmarkReport') } },
            },
            '404': error('no such job of yours'),
            '409': error('not completed'),
            '410': error('the result expired or was deleted'),
          },
        },
      },
      '/api/v1/jobs/{id}/events': {
        get: {
          summary: 'Status and progress as Server-Sent Events until the job ends',
          description: '`event: progress` carries a Job; `event: end` closes the stream, or `event: revoked` (`{ code: "KEY_REVOKED", message }`) once the API key is revoked.',
          parameters: [jobId],
          responses: { '200': { description: 'an event stream', content: { 'text/event-stream': { schema: { type: 'string' } } } }, '404': error('no such job of yours') },
        },
      },
      '/api/v1/blobs/{sha256}': {
        get: {
          summary: 'A content-addressed input panel or model package (for contributors holding a lease)',
          description: 'Only through the signed, expiring URL a lease carries (`url` of a blob reference; see docs/protocol.md): `exp` and `sig` are part of it.',
          security: [],
          parameters: [
            { name: 'sha256', in: 'path', required: true, schema: { type: 'string', pattern: '^[0-9a-f]{64}$' } },
            { name: 'exp', in: 'query', required: true, description: 'expiry, Unix seconds, as the lease gave it', schema: { type: 'string', pattern: '^[0-9]{1,12}$' } },
            { name: 'sig', in: 'query', required: true, description: 'signature, as the lease gave it', schema: { type: 'string', pattern: '^[A-Za-z0-9_-]{43}$' } },
          ],
          responses: {
            '200': { description: 'the raw bytes; immutable, private (no shared caches)', content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } },
            '206': { description: 'a byte range' },
            '400': error('not a sha256'),
            '403': error('BLOB_FORBIDDEN: no valid signature for this blob; BLOB_URL_EXPIRED: the URL expired with its lease'),
            '404': error('no such blob'),
          },
        },
      },
      '/api/v1/contributors/me': {
        get: {
          summary: "A contributor's own stats, by its identity token",
          security: [{ contributorToken: [] }],
          responses: { '200': json(ref('ContributorStats'), 'the contributor'), '401': error('missing or unknown token') },
        },
      },
      '/api/v1/contributors/{id}': {
        get: {
          summary: "A contributor's public standing",
          security: [],
          parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } }],
          responses: { '200': json(ref('ContributorStats'), 'the contributor'), '404': error('no such contributor') },
        },
      },
      '/api/v1/leases/{token}/result': {
        put: {
          summary: 'A contributor returns a result tile (see docs/protocol.md)',
          security: [],
          parameters: [
            { name: 'token', in: 'path', required: true, description: 'the lease token: the credential', schema: { type: 'string' } },
            { name: 'X-Shard-Id', in: 'header', required: true, schema: { type: 'string' } },
          ],
          requestBody: { required: true, content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } },
          responses: {
            '200': { description: '{ ok: true, status: "verified" | "pending" }; the same bytes sent again for the lease get the same reply', content: { 'application/json': { schema: { type: 'object' } } } },
            '400': error('the X-Shard-Id header is missing or longer than 64 characters'),
            '404': { description: 'no such lease, or a different result for a lease that already ended', content: { 'application/json': { schema: { type: 'object' } } } },
            '409': { description: 'the shard was completed by someone else, or its job ended', content: { 'application/json': { schema: { type: 'object' } } } },
            '413': error('over 16 MiB'),
            '415': error('not application/octet-stream'),
            '422': { description: 'wrong size (SHAPE_MISMATCH), or failed verification (VERIFICATION_FAILED, with the one message "result rejected: it failed verification")', content: { 'application/json': { schema: { type: 'object' } } } },
            '429': error('over 1200 results a minute from this address'),
            '500': error('internal'),
          },
        },
      },
      '/api/v1/leases/{token}/benchmark': {
        put: {
          summary: 'A contributor returns a benchmark run: timings and probed elements of C (see docs/protocol.md)',
          security: [],
          parameters: [{ name: 'token', in: 'path', required: true, description: 'the run’s lease token', schema: { type: 'string' } }],
          requestBody: { required: true, content: { 'application/json': { schema: { type: 'object' } } } },
          responses: {
            '200': { description: '{ ok: true, status: "accepted" | "declined" }', content: { 'application/json': { schema: { type: 'object' } } } },
            '400': { description: 'malformed result', content: { 'application/json': { schema: { type: 'object' } } } },
            '404': { description: 'no such run', content: { 'application/json': { schema: { type: 'object' } } } },
            '409': { description: 'the run lapsed or its job ended', content: { 'application/json': { schema: { type: 'object' } } } },
            '422': { description: 'a probed element of C was wrong, or the timing implausible', content: { 'application/json': { schema: { type: 'object' } } } },
          },
        },
      },
      '/api/v1/benchmarks': {
        get: {
          summary: 'Completed network benchmarks, newest first, grouped by adapter (public)',
          security: [],
          parameters: [{ name: 'limit', in: 'query', required: false, schema: { type: 'integer', minimum: 1, maximum: 100, default: 20 } }],
          responses: { '200': json(ref('BenchmarkList'), 'benchmarks'), '400': error('bad limit') },
        },
      },
      '/api/v1/network': {
        get: { summary: 'The network now: contributors online, GFLOPS, 24 h series, leaderboards', security: [], responses: { '200': json(ref('NetworkSnapshot'), 'a snapshot') } },
      },
      '/api/v1/network/events': {
        get: {
          summary: 'The same snapshot as Server-Sent Events (`event: snapshot`), every 2 s',
          security: [],
          responses: { '200': { description: 'an event stream', content: { 'text/event-stream': { schema: { type: 'string' } } } } },
        },
      },
      '/api/v1/leaderboard': {
        get: { summary: 'Credits of contributors and teams: day, week, all time (cached)', security: [], responses: { '200': json(ref('Leaderboard'), 'the leaderboards') } },
      },
      '/api/v1/openapi.json': {
        get: { summary: 'This document', security: [], responses: { '200': { description: 'OpenAPI 3.0', content: { 'application/json': { schema: { type: 'object' } } } } } },
      },
    },
  };
}
