import { randomBytes, randomUUID } from 'node:crypto';
import { sha256Hex } from '../sha256';
import type { Server, Socket } from 'socket.io';
import type { z } from 'zod';
import { describeZodError, HelloSchema, LeaseRequestSchema, ProfileSchema, ReleaseSchema, ResultSchema } from '../../shared/protocol-schemas';
import { PROTOCOL_VERSION, type AdapterInfo, type ClientToServerEvents, type DeviceLimits, type InterServerEvents, type ProtocolError, type ServerToClientEvents } from '../../shared/protocol';
import type { Logger } from '../logger';
import type { Dispatcher, ContributorSession } from '../scheduler/dispatcher';
import type { ResultIntake } from '../scheduler/result-intake';
import type { TrustKeeper } from '../trust/trust-keeper';
import { TokenBucket } from './rate-limiter';
import type { Metrics } from '../metrics/metrics';
import type { ProfileChange, Store } from '../store/store';
import { checkDisplayName } from '../../shared/display-name';
import { nameSkeleton, RESERVED_SKELETONS } from '../community/name-skeleton';
import type { IdleSessions } from './idle-sessions';
import type { KernelTuning } from '../../shared/matmul-configs';
import type { TuningCensus } from '../scheduler/tuning-census';

export interface SocketData {
  contributorId?: string;
  limits?: DeviceLimits;
  reportedGflops?: number;
  tuning?: KernelTuning;
  adapter?: AdapterInfo;
  agentKind?: string;
  accepts?: ('matmul' | 'benchmark' | 'inference')[];
  models?: string[];
}

export type ContributorServer = Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;
type ContributorSocket = Socket<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;

export interface ChannelDeps {
  /**
   * Prepended to socket ids to name sessions in the store: with several coordinators on one
   * store, a node starting again releases the leases of its own old sessions, and only those.
   */
  sessionPrefix?: string;
  store: Store;
  dispatcher: Dispatcher;
  intake: ResultIntake;
  trust: TrustKeeper;
  rateLimit: { perSecond: number; burst: number };
  idle: IdleSessions;
  census: TuningCensus;
  metrics: Metrics;
  helloTimeoutMs: number;
  log: Logger;
}

const NO_RETRY_MS = 5_000;

export const contributorRoom = (contributorId: string) => `contributor:${contributorId}`;

type Reply = { ok: false; error: ProtocolError } | { ok: true } | object;

/** What the wrapper reports about a socket's misbehaviour. */
interface Guard {
  bucket: TokenBucket;
  onFlood(): void;
  onMalformed(detail: string): void;
}

/**
 * Wraps a handler so that every message is rate-limited and validated before
 * it runs: a flood is refused, a malformed payload or a missing
 * acknowledgement callback is answered (or dropped) and reported here, and an
 * exception becomes an INTERNAL error reply instead of an unhandled rejection.
 */
function handler<S extends z.ZodType, R extends Reply>(
  socket: ContributorSocket,
  log: Logger,
  guard: Guard,
  schema: S,
  run: (msg: z.output<S>) => Promise<R>,
): (msg: unknown, ack: unknown) => void {
  return (msg, ack) => {
    const reply = typeof ack === 'function' ? (ack as (r: Reply) => void) : undefined;
    if (!guard.bucket.take()) {
      guard.onFlood();
      reply?.({ ok: false, error: { code: 'RATE_LIMITED', message: 'too many messages; slow down' } });
      return;
    }
    if (!reply) {
      guard.onMalformed('message without acknowledgement callback');
      return;
    }
    const parsed = schema.safeParse(msg);
    if (!parsed.success) {
      const message = describeZodError(parsed.error);
      guard.onMalformed(message);
      reply({ ok: false, error: { code: 'BAD_MESSAGE', message } });
      return;
    }
    run(parsed.data).then(reply, (err: unknown) => {
      log.error({ err, sessionId: socket.id }, 'contributor message failed');
      reply({ ok: false, error: { code: 'INTERNAL', message: 'the coordinator failed to handle this message' } });
    });
  };
}

function session(socket: ContributorSocket, sessionId: string): ContributorSession | undefined {
  const { contributorId, limits, reportedGflops, tuning, adapter, agentKind, accepts, models } = socket.data;
  if (!contributorId || !limits) return undefined;
  return {
    contributorId,
    sessionId,
    limits,
    ...(reportedGflops ? { reportedGflops } : {}),
    ...(tuning ? { tuning } : {}),
    ...(adapter ? { adapter } : {}),
    ...(agentKind ? { agentKind } : {}),
    ...(accepts ? { accepts } : {}),
    ...(models ? { models } : {}),
  };
}

const notIntroduced = { ok: false as const, error: { code: 'NOT_INTRODUCED' as const, message: 'send hello first' } };

export function attachContributorChannel(io: ContributorServer, deps: ChannelDeps): void {
  const { store, dispatcher, intake, trust, idle, log } = deps;
  io.on('connection', (socket) => {
    const sessionId = (deps.sessionPrefix ?? '') + socket.id;
    // The session's own room, so a lease:revoked for it reaches this socket from any node (socket.id's room is implicit).
    if (sessionId !== socket.id) void socket.join(sessionId);
    const helloTimer = setTimeout(() => {
      if (!socket.data.contributorId) socket.disconnect(true);
    }, deps.helloTimeoutMs);
    let lastFloodStrike = 0;
    let refused = 0;
    let anonymousMalformed = 0;
    const report = (event: 'flood' | 'protocol-violation', detail: string) => {
      const id = socket.data.contributorId;
      if (id) void trust.record(id, event, detail).catch((err: unknown) => log.error({ err }, 'recording a strike failed'));
    };
    const guard: Guard = {
      bucket: new TokenBucket(deps.rateLimit.perSecond, deps.rateLimit.burst),
      onFlood() {
        refused++;
        const now = Date.now();
        if (now - lastFloodStrike > 10_000) {
          lastFloodStrike = now;
          report('flood', `over ${deps.rateLimit.perSecond} messages/s`);
        }
        if (refused > deps.rateLimit.burst * 10) socket.disconnect(true);
      },
      onMalformed(detail) {
        if (socket.data.contributorId) report('protocol-violation', detail);
        else if (++anonymousMalformed > 20) socket.disconnect(true);
      },
    };

    socket.on(
      'hello',
      handler(socket, log, guard, HelloSchema, async (msg) => {
        if (msg.protocol !== PROTOCOL_VERSION) {
          return { ok: false as const, error: { code: 'PROTOCOL_VERSION' as const, message: `this coordinator speaks protocol ${PROTOCOL_VERSION}, you sent ${msg.protocol}` } };
        }
        const now = Date.now();
        const adapter = JSON.stringify(msg.adapter);
        let token = msg.token;
        let contributor = token ? await store.findContributorByTokenHash(sha256Hex(token)) : undefined;
        if (contributor?.trust.status === 'banned') {
          return { ok: false as const, error: { code: 'BANNED' as const, message: `this contributor is banned: ${contributor.statusReason ?? 'repeated bad results'}` } };
        }
        if (contributor) {
          await store.touchContributor(contributor.id, msg.agent.kind, adapter, now);
        } else {
          token = randomBytes(32).toString('base64url');
          const id = randomUUID();
          await store.registerContributor({ id, tokenHash: sha256Hex(token), kind: msg.agent.kind, adapter, now });
          contributor = await store.getContributor(id);
        }
        socket.data.contributorId = contributor!.id;
        await socket.join(contributorRoom(contributor!.id));
        socket.data.limits = msg.limits;
        deps.metrics.contributorJoined(socket.id, msg.agent.kind, msg.adapter.vendor);
        if (msg.benchmark) socket.data.reportedGflops = msg.benchmark.matmulGflops;
        socket.data.adapter = msg.adapter;
        socket.data.agentKind = msg.agent.kind;
        socket.data.accepts = msg.accepts;
        socket.data.models = msg.models;
        if (msg.kernels) {
          socket.data.tuning = msg.kernels;
          deps.census.join(socket.id, msg.kernels);
        }
        clearTimeout(helloTimer);
        log.info({ contributorId: contributor!.id, sessionId, kind: msg.agent.kind, adapter: msg.adapter }, 'contributor joined');
        return { ok: true as const, contributorId: contributor!.id, token: token!, protocol: PROTOCOL_VERSION };
      }),
    );

    socket.on(
      'lease:request',
      handler(socket, log, guard, LeaseRequestSchema, async (msg) => {
        const s = session(socket, sessionId);
        if (!s) return notIntroduced;
        const leases = await dispatcher.grant(s, msg.max);
        if (leases.length === 0) idle.markIdle(socket.id);
        else idle.markBusy(socket.id);
        return leases.length > 0 ? { ok: true as const, leases } : { ok: true as const, leases, retryAfterMs: NO_RETRY_MS };
      }),
    );

    socket.on(
      'lease:result',
      handler(socket, log, guard, ResultSchema, async (msg) => {
        const s = session(socket, sessionId);
        if (!s) return notIntroduced;
        deps.metrics.bytesReceived.inc(msg.c.byteLength);
        return intake.submit(s, msg);
      }),
    );

    socket.on(
      'profile',
      handler(socket, log, guard, ProfileSchema, async (msg) => {
        const s = session(socket, sessionId);
        if (!s) return notIntroduced;
        const change: ProfileChange = {};
        for (const field of ['name', 'team'] as const) {
          const value = msg[field];
          if (value === undefined) continue;
          if (value === null || value.trim() === '') {
            change[field] = null;
            continue;
          }
          const checked = checkDisplayName(value, field, field === 'team' ? 40 : 32);
          if (!checked.ok) return { ok: false as const, error: { code: 'BAD_NAME' as const, message: checked.message } };
          const skeleton = nameSkeleton(checked.name);
          if (RESERVED_SKELETONS.has(skeleton)) return { ok: false as const, error: { code: 'BAD_NAME' as const, message: `${field} "${checked.name}" is reserved` } };
          change[field] = { display: checked.name, skeleton };
        }
        const result = await store.setProfile(s.contributorId, change, Date.now());
        if (!result.ok) return { ok: false as const, error: { code: 'BAD_NAME' as const, message: 'that name (or one that looks like it) is taken' } };
        return result;
      }),
    );

    socket.on(
      'lease:release',
      handler(socket, log, guard, ReleaseSchema, async (msg) => {
        const s = session(socket, sessionId);
        if (!s) return notIntroduced;
        const ok = await dispatcher.release(s, msg.shardId, msg.leaseToken);
        return ok ? { ok: true as const } : { ok: false as const, error: { code: 'LEASE_UNKNOWN' as const, message: 'no such active lease' } };
      }),
    );

    socket.on('disconnect', (reason) => {
      clearTimeout(helloTimer);
      // An oversized or unparsable frame closes the connection inside engine.io, before any handler runs.
      if (reason === 'transport error' || reason === 'parse error') report('protocol-violation', `connection closed: ${reason}`);
      idle.markBusy(socket.id);
      deps.census.leave(socket.id);
      deps.metrics.contributorLeft(socket.id);
      dispatcher.sessionClosed(sessionId).catch((err: unknown) => log.error({ err }, 'releasing leases failed'));
    });
  });
}
