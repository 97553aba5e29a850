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
import { checkPublicName, MAX_CONTRIBUTOR_NAME, MAX_TEAM_NAME } from '../community/name-skeleton';
import type { IdleSessions } from './idle-sessions';
import type { KernelTuning } from '../../shared/matmul-configs';
import type { TuningCensus } from '../scheduler/tuning-census';
import { IdentityLimits, type IdentityLimitsConfig } from '../trust/identity-limits';
import { networkPrefix } from '../trust/network-prefix';
import { clientAddress, compileTrustProxy } from '../trust/peer-address';

export interface SocketData {
  contributorId?: string;
  limits?: DeviceLimits;
  reportedGflops?: number;
  tuning?: KernelTuning;
  adapter?: AdapterInfo;
  agentKind?: string;
  accepts?: ('matmul' | 'benchmark' | 'inference')[];
  models?: string[];
  /** The network prefix the connection comes from (server/trust/network-prefix.ts); absent when unknown. */
  network?: string;
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
  /** TESSERA_TRUST_PROXY: whose X-Forwarded-For names a connection's address (default: loopback's). */
  trustProxy?: string;
  /** How many identities a `hello` without a known token may mint (default: 20 per network, 5 per address, per hour). */
  newIdentities?: IdentityLimitsConfig;
}

const DEFAULT_IDENTITY_LIMITS: IdentityLimitsConfig = { perNetworkHour: 20, perIpHour: 5 };

const NO_RETRY_MS = 5_000;

/** The events a contributor may send (ClientToServerEvents), for the reply to an unknown one. */
const CLIENT_EVENTS = ['hello', 'lease:request', 'lease:result', 'lease:release', 'profile'] as const satisfies readonly (keyof ClientToServerEvents)[];

export const contributorRoom = (contributorId: string) => `contributor:${contributorId}`;

type Reply = { ok: false; error: ProtocolError } | { ok: true } | object;

/** What the wrapper reports about a socket's misbehaviour. */
interface Guard {
  bucket: TokenBucket;
  onFlood(): void;
  onMalformed(detail: string): void;
}

const badMessage = (message: string) => ({ ok: false as const, error: { code: 'BAD_MESSAGE' as const, message } });

/**
 * Splits a message's arguments as Socket.IO delivers them: the acknowledgement
 * callback, when there is one, is always the last; what comes before is the payload.
 */
function splitArgs(args: unknown[]): { payload: unknown[]; reply?: (r: Reply) => void } {
  const last = args.at(-1);
  return typeof last === 'function' ? { payload: args.slice(0, -1), reply: last as (r: Reply) => void } : { payload: args };
}

/**
 * Wraps a handler so that every message is rate-limited and validated before
 * it runs: a flood is refused, a malformed payload (not exactly one message
 * object) or a missing acknowledgement callback is answered (or dropped) and
 * reported here, and an exception becomes an INTERNAL error reply instead of
 * an unhandled rejection.
 */
function handler<S extends z.ZodType, R extends Reply>(
  socket: ContributorSocket,
  log: Logger,
  guard: Guard,
  schema: S,
  run: (msg: z.output<S>) => Promise<R>,
): (...args: unknown[]) => void {
  return (...args) => {
    const { payload, reply } = splitArgs(args);
    if (!guard.bucket.take()) {
      guard.onFlood();
      reply?.({ ok: false, error: { code: 'RATE_LIMITED', message: 'too many messages; slow down' } });
      return;
    }
    if (!reply) {
      guard.onMalformed('message without acknowledgement callback');
      return;
    }
    if (payload.length !== 1) {
      const message = `send one message object and an acknowledgement callback (got ${payload.length} arguments before the callback)`;
      guard.onMalformed(message);
      reply(badMessage(message));
      return;
    }
    const parsed = schema.safeParse(payload[0]);
    if (!parsed.success) {
      const message = describeZodError(parsed.error);
      guard.onMalformed(message);
      reply(badMessage(message));
      return;
    }
    run(parsed.data).then(reply, (err: unknown) => {
      log.error({ err, sessionId: socket.id }, 'contributor message failed');
      reply({ ok: false, error: { code: 'INTERNAL', message: 'the coordinator failed to handle this message' } });
    });
  };
}

function session(socket: ContributorSocket, sessionId: string): ContributorSession | undefined {
  const { contributorId, limits, reportedGflops, tuning, adapter, agentKind, accepts, models, network } = socket.data;
  if (!contributorId || !limits) return undefined;
  return {
    contributorId,
    sessionId,
    ...(network ? { network } : {}),
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
  const trustProxy = compileTrustProxy(deps.trustProxy ?? 'loopback');
  const identities = new IdentityLimits(store, deps.newIdentities ?? DEFAULT_IDENTITY_LIMITS);
  io.on('connection', (socket) => {
    const sessionId = (deps.sessionPrefix ?? '') + socket.id;
    const address = clientAddress(socket.handshake.address, socket.handshake.headers, trustProxy);
    const network = networkPrefix(address);
    if (network) socket.data.network = network;
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

    // Events this coordinator does not handle are answered (when they ask) and counted as malformed,
    // so that an agent speaking another version hears why nothing happens.
    socket.onAny((event: unknown, ...args: unknown[]) => {
      if (typeof event === 'string' && socket.listenerCount(event as keyof ClientToServerEvents) > 0) return;
      const { reply } = splitArgs(args);
      if (!guard.bucket.take()) {
        guard.onFlood();
        reply?.({ ok: false, error: { code: 'RATE_LIMITED', message: 'too many messages; slow down' } });
        return;
      }
      const name = JSON.stringify(String(event).slice(0, 64));
      guard.onMalformed(`unknown event ${name}`);
      reply?.(badMessage(`unknown event ${name}; this coordinator handles: ${CLIENT_EVENTS.join(', ')} (protocol ${PROTOCOL_VERSION})`));
    });

    const introduce = async (msg: z.output<typeof HelloSchema>) => {
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
        const fresh = randomBytes(32).toString('base64url');
        const id = randomUUID();
        const minted = await identities.mint(address, network, async () => {
          await store.registerContributor({ id, tokenHash: sha256Hex(fresh), kind: msg.agent.kind, adapter, now, ...(network ? { address: network } : {}) });
          return store.getContributor(id);
        });
        if (!minted.ok) {
          log.info({ sessionId, network, retryAfterS: minted.retryAfterS }, 'new identity refused: too many from its network');
          const message = `too many new identities from your network; reuse the token an earlier hello gave you, or retry in ${minted.retryAfterS} s`;
          return { ok: false as const, error: { code: 'RATE_LIMITED' as const, message } };
        }
        token = fresh;
        contributor = minted.value;
      }
      trust.noteNetwork(contributor!.id, network);
      // Gone while the store answered: registering it now would leave a session no disconnect will clear.
      if (!socket.connected) return badMessage('disconnected during hello');
      socket.data.contributorId = contributor!.id;
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
      await socket.join(contributorRoom(contributor!.id));
      log.info({ contributorId: contributor!.id, sessionId, kind: msg.agent.kind, adapter: msg.adapter }, 'contributor joined');
      return { ok: true as const, contributorId: contributor!.id, token: token!, protocol: PROTOCOL_VERSION };
    };

    // Hello comes once per connection: a second one (or one racing the first) would switch identity under held leases.
    let introducing = false;
    socket.on(
      'hello',
      handler(socket, log, guard, HelloSchema, async (msg) => {
        if (socket.data.contributorId || introducing) {
          guard.onMalformed('second hello on one connection');
          return badMessage('this connection has already said hello; to change identity, reconnect and say hello once');
        }
        introducing = true;
        try {
          return await introduce(msg);
        } finally {
          introducing = false;
        }
      }),
    );

    socket.on(
      'lease:request',
      handler(socket, log, guard, LeaseRequestSchema, async (msg) => {
        const s = session(socket, sessionId);
        if (!s) return notIntroduced;
        const leases = await dispatcher.grant(s, msg.max);
        if (!socket.connected) {
          // The disconnect handler may have run before these leases existed: release them now, not at their deadline.
          await dispatcher.sessionClosed(sessionId);
          return { ok: true as const, leases: [] };
        }
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
          const checked = checkPublicName(value, field, field === 'team' ? MAX_TEAM_NAME : MAX_CONTRIBUTOR_NAME);
          if (!checked.ok) return { ok: false as const, error: { code: 'BAD_NAME' as const, message: checked.message } };
          change[field] = { display: checked.name, skeleton: checked.skeleton };
        }
        const result = await store.setProfile(s.contributorId, change, Date.now());
        if (!result.ok)
          return { ok: false as const, error: { code: 'BAD_NAME' as const, message: `name "${change.name?.display}" is taken by another contributor, or looks like one that is; choose another` } };
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
      idle.forget(socket.id);
      deps.census.leave(socket.id);
      deps.metrics.contributorLeft(socket.id);
      dispatcher.sessionClosed(sessionId).catch((err: unknown) => log.error({ err }, 'releasing leases failed'));
      // A client that leaves the namespace ("41") keeps its connection open, past every timeout, unless it is closed
      // here: contributors use only this namespace, so the connection has nothing left to carry.
      if (reason === 'client namespace disconnect') socket.conn.close();
    });
  });
}
