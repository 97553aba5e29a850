import { readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { io, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { matmulReference, maxToleranceRatio } from '../../shared/matmul-reference';
import { PROTOCOL_ERROR_CODES, PROTOCOL_VERSION } from '../../shared/protocol';
import { WEBGPU_DEFAULT_LIMITS } from '../../shared/tiling';
import { authHeaders, downloadResult, makeDataDir, submitMatmul, waitForJob } from '../support/coordinator';
import { spawnCoordinator, type CoordinatorProcess } from '../support/coordinator-process';
import { randomMatrix } from '../support/matrices';
import { SimContributor } from '../support/sim-contributor';
import { prng } from '../support/prng';

/**
 * Socket.IO message fuzzer. Hundreds of sockets send mutated and random
 * messages for every contributor event (and unknown ones) to a coordinator
 * running as its own process: wrong types, missing and extra fields, huge
 * strings and arrays, binary junk, deep nesting, prototype keys, NaN and
 * Infinity, results for leases not held or of the wrong size, messages before
 * hello, second hellos, floods, messages without acknowledgement, raw junk
 * frames, disconnects mid-message. Then it checks that the coordinator is
 * alive and clean, and that an honest contributor still gets a right answer.
 *
 * Replay a run: FUZZ_SEED=<seed printed> npx vitest run test/integration/socket-fuzz.test.ts
 * (message contents follow the seed; their interleaving follows timing).
 */

const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
/** Sockets are opened until this many messages were sent (or MAX_SOCKETS were used). */
const MIN_MESSAGES = Number(process.env.FUZZ_MESSAGES ?? 20_000);
const MAX_SOCKETS = 2_000;
const CONCURRENCY = 40;
/** A reply slower than this counts as none. */
const ACK_TIMEOUT_MS = 20_000;
const HELLO_TIMEOUT_MS = 2_000;
/** The fuzz phase fails, naming the sockets still busy, rather than hang. */
const FUZZ_LIMIT_MS = 150_000;

type Rand = () => number;


const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const int = (r: Rand, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const chance = (r: Rand, p: number) => r() < p;

function bytes(r: Rand, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 4) {
    const v = (r() * 2 ** 32) >>> 0;
    out[i] = v & 0xff;
    if (i + 1 < n) out[i + 1] = (v >>> 8) & 0xff;
    if (i + 2 < n) out[i + 2] = (v >>> 16) & 0xff;
    if (i + 3 < n) out[i + 3] = v >>> 24;
  }
  return out;
}

const PROTO_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty', 'then', 'toJSON', '__defineGetter__'];
const ODD_STRINGS = ['', ' ', '\u0000', '\ud800', '\u202e\u2066', 'ㅤ', '1e3', '0x10', '-1', 'NaN', 'null', 'undefined', '[object Object]', '../../etc/passwd', '%00', '<script>', 'a'.repeat(257), ...PROTO_KEYS];
const ODD_NUMBERS = [0, -0, -1, 1.5, 2 ** 31, 2 ** 53 + 1, -(2 ** 53), 1e308, -1e308, Number.MIN_VALUE, NaN, Infinity, -Infinity, 9, 8, 1];

/** Counts the huge values the generator hands out, so a run stays within memory and time. */
interface Budget {
  huge: number;
}

function hugeValue(r: Rand, budget: Budget): unknown {
  budget.huge++;
  switch (int(r, 0, 4)) {
    case 0:
      return 'x'.repeat(int(r, 100_000, 2_000_000));
    case 1:
      return Array.from({ length: int(r, 10_000, 200_000) }, (_, i) => i * r());
    case 2: {
      // Deep nesting: arrays or objects a few thousand levels down.
      let v: unknown = 1;
      // Deeper than this, socket.io-client's own recursive encoder overflows the fuzzer's stack (raw packets go deeper).
      const depth = int(r, 200, 1_000);
      const asObject = chance(r, 0.5);
      for (let i = 0; i < depth; i++) v = asObject ? { a: v } : [v];
      return v;
    }
    case 3:
      return bytes(r, int(r, 1 << 20, 4 << 20));
    default:
      return Object.fromEntries(Array.from({ length: int(r, 1_000, 20_000) }, (_, i) => [`k${i}`, i]));
  }
}

/** A value of any shape the wire can carry, including ones no schema expects. */
function junk(r: Rand, budget: Budget, depth = 0): unknown {
  if (depth < 1 && chance(r, 0.004) && budget.huge < 60) return hugeValue(r, budget);
  switch (int(r, 0, 11)) {
    case 0:
      return pick(r, [null, undefined, true, false]);
    case 1:
    case 2:
      return pick(r, ODD_NUMBERS);
    case 3:
      return pick(r, ODD_STRINGS);
    case 4:
      return String.fromCharCode(...Array.from({ length: int(r, 0, 40) }, () => int(r, 0, 0xffff)));
    case 5:
      return bytes(r, int(r, 0, 2048));
    case 6: {
      // An unaligned view, as a careless agent might send.
      const b = bytes(r, int(r, 1, 512) + 1);
      return b.subarray(1);
    }
    case 7:
      return depth > 3 ? [] : Array.from({ length: int(r, 0, 6) }, () => junk(r, budget, depth + 1));
    case 8: {
      if (depth > 3) return {};
      const o: Record<string, unknown> = {};
      for (let i = int(r, 0, 5); i > 0; i--) o[chance(r, 0.5) ? pick(r, PROTO_KEYS) : pick(r, ['max', 'protocol', 'c', 'shardId', 'leaseToken', 'name', 'token', 'x'])] = junk(r, budget, depth + 1);
      return o;
    }
    case 9:
      // Own __proto__ / constructor keys, as JSON.parse builds them from a hostile payload.
      return JSON.parse(pick(r, ['{"__proto__":{"polluted":1,"status":"banned"}}', '{"constructor":{"prototype":{"polluted":1}}}', '{"__proto__":[]}', '{"max":{"__proto__":{"valueOf":1}}}']));
    case 10:
      return new Float32Array(Array.from({ length: int(r, 0, 64) }, () => pick(r, [NaN, Infinity, -Infinity, 0, 1e38, r()])));
    default:
      return int(r, -10, 10);
  }
}

interface Held {
  shardId: string;
  leaseToken: string;
  bytes: number;
}

/** Leases any fuzz socket was granted: other sockets send results and releases for them. */
const granted: Held[] = [];

function validHello(r: Rand, token?: string): Record<string, unknown> {
  return {
    protocol: PROTOCOL_VERSION,
    ...(token ? { token } : {}),
    agent: { kind: pick(r, ['page', 'agent', 'simulated']), userAgent: 'socket-fuzz' },
    adapter: { vendor: pick(r, ['fuzz', 'nvidia', '']), architecture: 'x', device: '', description: '' },
    limits: WEBGPU_DEFAULT_LIMITS,
    ...(chance(r, 0.3) ? { accepts: ['matmul', 'benchmark', 'inference'] } : {}),
    ...(chance(r, 0.3) ? { benchmark: { matmulGflops: r() * 100 + 0.1 } } : {}),
  };
}

/** A message for `event` that the coordinator should accept, given what this socket holds. */
function template(r: Rand, event: string, held: Held[]): Record<string, unknown> {
  const lease = held.length && chance(r, 0.7) ? pick(r, held) : granted.length ? pick(r, granted) : undefined;
  switch (event) {
    case 'hello':
      return validHello(r);
    case 'lease:request':
      return { max: int(r, 1, 8) };
    case 'lease:result': {
      const size = lease ? lease.bytes : int(r, 0, 4096);
      const wrong = chance(r, 0.5) ? pick(r, [0, 1, -4, 4, 3, -size + 4]) : 0;
      return {
        shardId: lease?.shardId ?? `shard-${int(r, 0, 99)}`,
        leaseToken: lease?.leaseToken ?? Buffer.from(bytes(r, 24)).toString('base64url'),
        computeMs: r() * 1000,
        c: bytes(r, Math.max(0, size + wrong)),
      };
    }
    case 'lease:release':
      return { shardId: lease?.shardId ?? 'x', leaseToken: lease?.leaseToken ?? 'y' };
    case 'profile':
      return { name: pick(r, [`fuzz${int(r, 0, 1e6)}`, null, '', 'Tessera', 'anonymous-ad449d']), ...(chance(r, 0.5) ? { team: pick(r, ['fuzzers', null, 'ㅤ']) } : {}) };
    default:
      return {};
  }
}

/** Drops, adds, or replaces fields (at any depth), or replaces the whole message. */
function mutate(r: Rand, budget: Budget, msg: Record<string, unknown>): unknown {
  const copy: Record<string, unknown> = { ...msg };
  const keys = Object.keys(copy);
  switch (int(r, 0, 7)) {
    case 0:
      return copy; // as is: valid
    case 1:
      if (keys.length) delete copy[pick(r, keys)];
      return copy;
    case 2:
      copy[chance(r, 0.5) ? pick(r, PROTO_KEYS) : `extra${int(r, 0, 9)}`] = junk(r, budget);
      return copy;
    case 3:
    case 4:
      if (keys.length) copy[pick(r, keys)] = junk(r, budget);
      return copy;
    case 5: {
      // One level down: hello.limits.maxBufferSize = NaN and the like.
      const k = keys.find((key) => typeof copy[key] === 'object' && copy[key] !== null && !ArrayBuffer.isView(copy[key]));
      if (k) {
        const inner = { ...(copy[k] as Record<string, unknown>) };
        const ik = Object.keys(inner);
        if (ik.length) inner[pick(r, ik)] = junk(r, budget);
        copy[k] = inner;
      }
      return copy;
    }
    case 6:
      return junk(r, budget);
    default:
      return JSON.parse(JSON.stringify(copy, (_k, v: unknown) => (typeof v === 'number' ? pick(r, [-v, v * 1e300, NaN, `${v}`]) : v)));
  }
}

const EVENTS = ['hello', 'lease:request', 'lease:result', 'lease:release', 'profile'] as const;
const UNKNOWN_EVENTS = ['', 'x', 'HELLO', 'hello ', 'lease:request:x', 'work:available', 'lease:revoked', 'toString', 'constructor', '__proto__', 'hasOwnProperty', 'e'.repeat(10_000), '\u0000'];

/**
 * Socket.IO packets (the engine adds its own "4" message prefix) written straight onto the
 * connection, as a broken or hostile client would: reserved event names, wrong shapes, other
 * namespaces, binary placeholders with no attachment, absurd attachment counts and ack ids.
 */
const RAW_PACKETS = [
  '2["disconnect","spoofed"]',
  '2["disconnecting"]',
  '2["connect"]',
  '2["newListener","hello"]',
  '2["error",{}]',
  '2[123,{}]',
  '2[null]',
  '2[{}]',
  '2[]',
  '2{"a":1}',
  '2["hello"',
  '2',
  '3',
  '399',
  '399["x"]',
  '4',
  '4{"message":"x"}',
  '6',
  '7',
  '9',
  '',
  '0',
  '0{"token":1}',
  '0/admin,',
  '0/evil,{}',
  '2/evil,["hello",{}]',
  '21["hello"]',
  '21["lease:request",{"max":1}]',
  '29999999999999999999["lease:request",{"max":1}]',
  '2-1["hello",{}]',
  '5-["hello",{"_placeholder":true,"num":0}]',
  '51-["lease:result",{"c":{"_placeholder":true,"num":7}}]',
  '51-["lease:result",{"c":{"_placeholder":"yes","num":-1}}]',
  '5999999999-["x"]',
  '2["hello",' + '['.repeat(50_000) + ']'.repeat(50_000) + ']',
  '2["hello",{"__proto__":{"protocol":1}}]',
  '2["hello",{"constructor":{"prototype":{"protocol":1}}}]',
];

/** Engine.IO frames below Socket.IO: unknown packet types, empty messages, an upgrade or close out of turn. */
const RAW_ENGINE_FRAMES = ['9', '', 'x', '4', '6', '5', '3probe', '1', '0{}', '\u0000', '42', '4' + '2'.repeat(1000)];

interface Stats {
  sockets: number;
  messages: number;
  byEvent: Record<string, number>;
  withAck: number;
  replies: number;
  replyCodes: Record<string, number>;
  badReplies: string[];
  /** Acks whose socket the server closed before answering (policy: flood, junk frame, too many malformed). */
  closedByServer: number;
  /** Acks this fuzzer abandoned by closing its own socket mid-message. */
  abandoned: number;
  timeouts: string[];
  disconnectReasons: Record<string, number>;
  connectErrors: number;
  rawFrames: number;
  /** Messages socket.io-client refused to encode (too deep for its recursive encoder): not sent, not counted. */
  unencodable: number;
}

const stats: Stats = {
  sockets: 0,
  messages: 0,
  byEvent: {},
  withAck: 0,
  replies: 0,
  replyCodes: {},
  badReplies: [],
  closedByServer: 0,
  abandoned: 0,
  timeouts: [],
  disconnectReasons: {},
  connectErrors: 0,
  rawFrames: 0,
  unencodable: 0,
};

const inc = (m: Record<string, number>, k: string) => (m[k] = (m[k] ?? 0) + 1);

/** Narrow views of socket.io-client internals used to write raw frames and cut the connection. */
interface RawTransport {
  ws?: { send(data: string | Uint8Array): void; terminate?(): void };
}

class FuzzSocket {
  readonly s: Socket;
  selfClosed = false;
  /** The last thing this socket sent, for a stuck run's report. */
  last = 'nothing';
  readonly held: Held[] = [];
  private readonly pending: Promise<void>[] = [];

  constructor(url: string, transport: 'websocket' | 'polling') {
    this.s = io(url, { transports: [transport], reconnection: false, forceNew: true, timeout: 10_000 });
    this.s.on('disconnect', (reason) => inc(stats.disconnectReasons, this.selfClosed ? `self: ${reason}` : reason));
  }

  async connect(): Promise<boolean> {
    stats.sockets++;
    return new Promise((resolve) => {
      this.s.once('connect', () => resolve(true));
      this.s.once('connect_error', () => {
        stats.connectErrors++;
        resolve(false);
      });
    });
  }

  get open(): boolean {
    return this.s.connected;
  }

  /** Emits `args` on `event`; with an ack, the reply is checked and counted. Resolves with the reply (if any). */
  send(event: string, args: unknown[], withAck: boolean, awaitIt: boolean): Promise<unknown> {
    if (!this.open) return Promise.resolve(undefined);
    this.last = `${JSON.stringify(event.slice(0, 40))}${withAck ? ' with ack' : ''}`;
    const kind = EVENTS.includes(event as (typeof EVENTS)[number]) ? event : 'unknown';
    stats.messages++;
    inc(stats.byEvent, kind);
    if (!withAck) {
      this.emitOrCount(kind, () => this.s.emit(event, ...args));
      return Promise.resolve(undefined);
    }
    stats.withAck++;
    const p = new Promise<unknown>((resolve) => {
      const sent = this.emitOrCount(kind, () => this.s.timeout(ACK_TIMEOUT_MS).emit(event, ...args, (err: Error | null, reply: unknown) => {
        if (!err) {
          stats.replies++;
          const ok = typeof reply === 'object' && reply !== null && typeof (reply as { ok?: unknown }).ok === 'boolean';
          if (!ok) stats.badReplies.push(`${event}: ${JSON.stringify(reply)?.slice(0, 200)}`);
          else if ((reply as { ok: boolean }).ok) inc(stats.replyCodes, 'ok');
          else {
            const code = (reply as { error?: { code?: unknown } }).error?.code;
            if (!PROTOCOL_ERROR_CODES.includes(code as (typeof PROTOCOL_ERROR_CODES)[number])) stats.badReplies.push(`${event}: ${JSON.stringify(reply)?.slice(0, 200)}`);
            inc(stats.replyCodes, String(code));
          }
          resolve(reply);
        } else if (/disconnected/.test(err.message)) {
          if (this.selfClosed) stats.abandoned++;
          else stats.closedByServer++;
          resolve(undefined);
        } else {
          const shape = args.map((a) => (a === null ? 'null' : ArrayBuffer.isView(a) ? 'binary' : Array.isArray(a) ? 'array' : typeof a)).join(', ');
          stats.timeouts.push(`${JSON.stringify(event.slice(0, 40))}(${shape}) on ${this.s.id ?? '?'}: ${err.message}`);
          resolve(undefined);
        }
      }));
      if (!sent) {
        stats.withAck--;
        resolve(undefined);
      }
    });
    const settled = p.then(() => undefined);
    this.pending.push(settled);
    return awaitIt ? p : Promise.resolve(undefined);
  }

  /** Runs an emit; a message the client library itself cannot encode is counted, not sent. */
  private emitOrCount(kind: string, emit: () => void): boolean {
    try {
      emit();
      return true;
    } catch {
      stats.messages--;
      stats.byEvent[kind]!--;
      stats.unencodable++;
      return false;
    }
  }

  raw(frame: string | Uint8Array, onEngine: boolean): void {
    if (!this.open) return;
    this.last = `raw ${JSON.stringify(typeof frame === 'string' ? frame.slice(0, 40) : `${frame.byteLength} bytes`)}`;
    stats.messages++;
    stats.rawFrames++;
    inc(stats.byEvent, 'raw');
    const ws = (this.s.io.engine.transport as unknown as RawTransport).ws;
    if (onEngine && ws) ws.send(frame);
    else this.s.io.engine.write(frame as string);
  }

  /** Cuts the connection without a goodbye, possibly mid-frame. */
  cut(): void {
    this.selfClosed = true;
    const ws = (this.s.io.engine.transport as unknown as RawTransport).ws;
    if (ws?.terminate) ws.terminate();
    else this.s.disconnect();
  }

  async close(): Promise<void> {
    await Promise.all(this.pending);
    this.selfClosed = true;
    this.s.disconnect();
  }

  /** Sends `msg` for `event` in a random argument shape: with or without ack, extra or missing arguments. */
  fire(r: Rand, event: string, msg: unknown, awaitIt: boolean): Promise<unknown> {
    switch (int(r, 0, 9)) {
      case 0:
        return this.send(event, [msg], false, false); // no ack callback
      case 1:
        return this.send(event, [], true, awaitIt); // ack but no payload
      case 2:
        return this.send(event, [msg, msg], true, awaitIt); // two payloads
      case 3:
        return this.send(event, [], false, false); // nothing at all
      default:
        return this.send(event, [msg], true, awaitIt);
    }
  }
}

type Script = (sock: FuzzSocket, r: Rand, budget: Budget) => Promise<void>;

async function hello(sock: FuzzSocket, r: Rand, token?: string): Promise<boolean> {
  const reply = (await sock.send('hello', [validHello(r, token)], true, true)) as { ok?: boolean; token?: string } | undefined;
  if (reply?.ok && reply.token && tokens.length < 200) tokens.push(reply.token);
  return reply?.ok === true;
}

/** Identity tokens handed out so far: later sockets come back with them (or with another's). */
const tokens: string[] = [];

async function requestLeases(sock: FuzzSocket, r: Rand): Promise<void> {
  const reply = (await sock.send('lease:request', [{ max: int(r, 1, 4) }], true, true)) as
    | { ok: true; leases: { kind: string; shardId: string; leaseToken: string; rows?: number; cols?: number }[] }
    | undefined;
  for (const l of reply?.ok ? reply.leases : []) {
    const held = { shardId: l.shardId, leaseToken: l.leaseToken, bytes: (l.rows ?? 1) * (l.cols ?? 1) * 4 };
    sock.held.push(held);
    if (granted.length < 500) granted.push(held);
  }
}

/** One random message: an event of the protocol (mutated) or an unknown one. */
function randomMessage(sock: FuzzSocket, r: Rand, budget: Budget, awaitIt: boolean): Promise<unknown> {
  if (chance(r, 0.1)) return sock.fire(r, pick(r, UNKNOWN_EVENTS), junk(r, budget), awaitIt);
  const event = pick(r, EVENTS);
  return sock.fire(r, event, mutate(r, budget, template(r, event, sock.held)), awaitIt);
}

const scripts: Record<string, { weight: number; run: Script }> = {
  /** Everything before (or instead of) hello. */
  anonymous: {
    weight: 14,
    async run(sock, r, budget) {
      for (let i = int(r, 20, 80); i > 0 && sock.open; i--) await randomMessage(sock, r, budget, chance(r, 0.5));
    },
  },
  /** Introduces itself, then mixes valid requests, bad results, foreign leases, second hellos and junk. */
  contributor: {
    weight: 42,
    async run(sock, r, budget) {
      const token = tokens.length && chance(r, 0.3) ? pick(r, tokens) : chance(r, 0.1) ? Buffer.from(bytes(r, 32)).toString('base64url') : undefined;
      await hello(sock, r, token);
      for (let i = int(r, 30, 120); i > 0 && sock.open; i--) {
        const roll = r();
        if (roll < 0.15) await requestLeases(sock, r);
        else if (roll < 0.2) await hello(sock, r, chance(r, 0.5) ? pick(r, tokens) : undefined); // a second hello
        else if (roll < 0.25 && sock.held.length) {
          const lease = sock.held.shift()!;
          await sock.send('lease:release', [{ shardId: lease.shardId, leaseToken: lease.leaseToken }], true, true);
        } else await randomMessage(sock, r, budget, chance(r, 0.6));
      }
    },
  },
  /** Sends hundreds of messages without waiting. */
  flooder: {
    weight: 10,
    async run(sock, r, budget) {
      if (chance(r, 0.7)) await hello(sock, r);
      for (let i = int(r, 200, 600); i > 0 && sock.open; i--) void randomMessage(sock, r, budget, false);
    },
  },
  /** Starts big messages and cuts the connection under them. */
  disconnector: {
    weight: 10,
    async run(sock, r, budget) {
      if (chance(r, 0.3)) {
        // Gone before the hello is answered.
        void sock.send('hello', [validHello(r)], true, false);
        sock.cut();
        return;
      }
      await hello(sock, r);
      await requestLeases(sock, r);
      for (let i = int(r, 0, 10); i > 0 && sock.open; i--) void randomMessage(sock, r, budget, false);
      const lease = sock.held[0];
      void sock.send('lease:result', [{ shardId: lease?.shardId ?? 's', leaseToken: lease?.leaseToken ?? 't', c: bytes(r, int(r, 1 << 20, 8 << 20)) }], true, false);
      void sock.send('lease:request', [{ max: 4 }], true, false);
      if (chance(r, 0.5)) await new Promise((resolve) => setTimeout(resolve, int(r, 0, 5)));
      sock.cut();
    },
  },
  /** Junk frames below the event layer. */
  raw: {
    weight: 10,
    async run(sock, r, budget) {
      if (chance(r, 0.5)) await hello(sock, r);
      for (let i = int(r, 1, 12); i > 0 && sock.open; i--) {
        if (chance(r, 0.6)) sock.raw(pick(r, RAW_PACKETS), false);
        else if (chance(r, 0.5)) sock.raw(bytes(r, int(r, 1, 4096)), chance(r, 0.5));
        else sock.raw(pick(r, RAW_ENGINE_FRAMES), true);
        if (chance(r, 0.5)) await randomMessage(sock, r, budget, true);
      }
    },
  },
  /** Connects and says nothing: the hello timeout must close it. */
  silent: {
    weight: 4,
    async run(sock) {
      const until = Date.now() + HELLO_TIMEOUT_MS * 3;
      while (sock.open && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 100));
      if (sock.open) stats.timeouts.push(`a silent socket was still open ${HELLO_TIMEOUT_MS * 3} ms after connecting`);
    },
  },
  /** Says hello, leaves the namespace with a raw packet once the connect timeout has passed, then keeps the connection: the server must close it. */
  leaver: {
    weight: 3,
    async run(sock, r) {
      await hello(sock, r);
      await new Promise((resolve) => setTimeout(resolve, HELLO_TIMEOUT_MS + 200));
      sock.raw('1', false); // a DISCONNECT packet for the main namespace
      const until = Date.now() + HELLO_TIMEOUT_MS * 3;
      while (sock.open && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 50));
      if (sock.open) stats.timeouts.push(`a connection that left the namespace was still open ${HELLO_TIMEOUT_MS * 3} ms later`);
    },
  },
  /** One message over the size limit. */
  oversize: {
    weight: 1,
    async run(sock, r) {
      await hello(sock, r);
      await sock.send('lease:result', [{ shardId: 'big', leaseToken: 'big', c: new Uint8Array(17 * 1024 * 1024) }], true, true);
    },
  },
};

function pickScript(r: Rand): string {
  const total = Object.values(scripts).reduce((s, x) => s + x.weight, 0);
  let roll = r() * total;
  for (const [name, s] of Object.entries(scripts)) {
    if ((roll -= s.weight) < 0) return name;
  }
  return 'contributor';
}

// ---------------------------------------------------------------------------------------------

let node: CoordinatorProcess;
let dataDir: string;
const errorLogs: string[] = [];
const stderr: string[] = [];

const fdCount = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;
const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

/** Sums the samples of `name` (those whose labels include `labels`) in `text`, one /metrics scrape. */
function metricIn(text: string, name: string, labels?: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (!/^[ {]/.test(rest)) continue;
    if (labels && !rest.includes(labels)) continue;
    sum += Number(line.split(' ').at(-1));
  }
  return sum;
}

async function metric(name: string, labels?: string): Promise<number> {
  return metricIn(await (await fetch(`${node.url}/metrics`)).text(), name, labels);
}

async function untilTrue(check: () => Promise<boolean> | boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

beforeAll(async () => {
  dataDir = await makeDataDir();
  node = await spawnCoordinator(dataDir, {
    TESSERA_CANARIES: 'off',
    TESSERA_HELLO_TIMEOUT_MS: String(HELLO_TIMEOUT_MS),
    TESSERA_KEY_REQUESTS_PER_MINUTE: '100000',
    TESSERA_TARGET_TILES: '16',
  });
  const lines = createInterface({ input: node.child.stdout! });
  lines.on('line', (line) => {
    try {
      const entry = JSON.parse(line) as { level?: number; msg?: string; err?: { message?: string } };
      if ((entry.level ?? 0) >= 50) errorLogs.push(`${entry.msg}${entry.err?.message ? `: ${entry.err.message}` : ''}`);
    } catch {
      errorLogs.push(`not a log line: ${line.slice(0, 200)}`);
    }
  });
  node.child.stderr!.on('data', (d: Buffer) => stderr.push(d.toString()));
}, 120_000);

afterAll(async () => {
  if (node && node.child.exitCode === null) {
    node.child.kill('SIGTERM');
    const timer = setTimeout(() => node.child.kill('SIGKILL'), 10_000);
    await node.exited;
    clearTimeout(timer);
  }
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('Socket.IO message fuzzer', () => {
  it('survives every message, answers every ack, leaves nothing behind, and still computes right', { timeout: 300_000 }, async () => {
    console.log(`socket fuzz seed ${SEED} (replay: FUZZ_SEED=${SEED} npx vitest run test/integration/socket-fuzz.test.ts)`);
    const pid = node.child.pid!;
    // Work for the fuzzers to hold leases of.
    const fuzzJobs: string[] = [];
    const submitFuzzJob = async (i: number) => {
      const job = await submitMatmul(node.url, { rows: 256, cols: 32, data: randomMatrix(256, 32, 100 + i) }, { rows: 32, cols: 256, data: randomMatrix(32, 256, 200 + i) });
      fuzzJobs.push(job.id);
    };
    for (let i = 0; i < 3; i++) await submitFuzzJob(i);
    // Warm up what a first connection and request open (pools, files), then count descriptors.
    const warm = await new SimContributor(node.url).connect();
    warm.disconnect();
    await new Promise((resolve) => setTimeout(resolve, 500));
    const fdBefore = fdCount(pid);
    const rssBefore = rssMiB(pid);
    let rssPeak = rssBefore;
    await metric('tessera_nodejs_eventloop_lag_p99_seconds'); // a scrape resets the lag histogram

    // Liveness and REST while the fuzz runs.
    let fuzzing = true;
    const health = { checks: 0, failures: [] as string[], worstMs: 0, latencies: [] as number[] };
    const rest = { requests: 0, byStatus: {} as Record<string, number>, fiveHundreds: [] as string[] };
    const healthLoop = (async () => {
      while (fuzzing) {
        rssPeak = Math.max(rssPeak, rssMiB(pid));
        const t0 = performance.now();
        try {
          const res = await fetch(`${node.url}/healthz`, { signal: AbortSignal.timeout(10_000) });
          await res.arrayBuffer();
          const ms = performance.now() - t0;
          health.checks++;
          health.latencies.push(ms);
          health.worstMs = Math.max(health.worstMs, ms);
          if (res.status !== 200) health.failures.push(`status ${res.status}`);
        } catch (err) {
          health.failures.push(String(err));
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    const restLoop = (async () => {
      for (let i = 1; fuzzing; i++) {
        const path = pick(Math.random, ['/api/v1/jobs', `/api/v1/jobs/${fuzzJobs[i % fuzzJobs.length]}`, '/api/v1/network', '/api/v1/leaderboard', '/api/v1/benchmarks', '/api/v1/jobs?limit=5']);
        try {
          const res = await fetch(`${node.url}${path}`, { headers: authHeaders(node.url), signal: AbortSignal.timeout(10_000) });
          rest.requests++;
          inc(rest.byStatus, String(res.status));
          if (res.status >= 500) rest.fiveHundreds.push(`${path}: ${res.status} ${await res.text()}`);
          else await res.arrayBuffer();
        } catch (err) {
          rest.fiveHundreds.push(`${path}: ${String(err)}`);
        }
        // Keep fuzz jobs available so lease requests are granted.
        if (i % 20 === 0) {
          const listed = (await (await fetch(`${node.url}/api/v1/jobs?limit=50`, { headers: authHeaders(node.url) })).json()) as { jobs: { status: string }[] };
          const active = listed.jobs.filter((j) => j.status === 'queued' || j.status === 'running').length;
          if (active < 2) await submitFuzzJob(i).catch((err: unknown) => rest.fiveHundreds.push(`submit: ${String(err)}`));
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();

    const t0 = Date.now();
    // Socket i's messages follow the i-th seed drawn from SEED, whatever the timing.
    const root = prng(SEED);
    const seeds = Array.from({ length: MAX_SOCKETS }, () => (root() * 2 ** 32) >>> 0);
    const scriptCounts: Record<string, number> = {};
    let next = 0;
    /** Sockets whose script is still running, by index: what a stuck run names. */
    const running = new Map<number, { script: string; sock: FuzzSocket }>();
    const worker = async () => {
      while (next < seeds.length && stats.messages < MIN_MESSAGES) {
        const index = next++;
        const r = prng(seeds[index]!);
        const name = pickScript(r);
        inc(scriptCounts, name);
        const sock = new FuzzSocket(node.url, chance(r, 0.05) ? 'polling' : 'websocket');
        running.set(index, { script: name, sock });
        try {
          if (await sock.connect()) {
            try {
              await scripts[name]!.run(sock, r, { huge: 0 });
            } finally {
              await sock.close();
            }
          }
        } finally {
          running.delete(index);
        }
      }
    };
    let stuck: NodeJS.Timeout | undefined;
    const fuzzed = Promise.race([
      Promise.all(Array.from({ length: CONCURRENCY }, worker)),
      new Promise((_, reject) => {
        stuck = setTimeout(() => {
          const which = [...running].map(([i, { script, sock }]) => `socket ${i} (${script}, ${sock.open ? 'open' : 'closed'}, last ${sock.last})`);
          reject(new Error(`the fuzz did not finish within ${FUZZ_LIMIT_MS} ms (seed ${SEED}); still running: ${which.join('; ')}`));
        }, FUZZ_LIMIT_MS);
      }),
    ]).finally(() => {
      clearTimeout(stuck);
      fuzzing = false;
    });
    await Promise.all([fuzzed, healthLoop, restLoop]);
    const fuzzMs = Date.now() - t0;

    // One scrape: each resets the lag histogram.
    const scrape = await (await fetch(`${node.url}/metrics`)).text();
    const lagP99 = metricIn(scrape, 'tessera_nodejs_eventloop_lag_p99_seconds');
    const lagMax = metricIn(scrape, 'tessera_nodejs_eventloop_lag_max_seconds');
    const sorted = [...health.latencies].sort((a, b) => a - b);
    const healthP99 = sorted[Math.floor(sorted.length * 0.99)] ?? 0;

    // Nothing left behind: sessions, leases, descriptors.
    const noContributors = await untilTrue(async () => (await metric('tessera_contributors_connected')) === 0, 10_000);
    const noLeases = await untilTrue(async () => (await metric('tessera_queue_shards', 'state="leased"')) === 0, 10_000);
    let fdAfter = fdCount(pid);
    await untilTrue(() => (fdAfter = fdCount(pid)) <= fdBefore, 15_000);

    console.log(
      [
        `socket fuzz: ${stats.messages} messages on ${stats.sockets} sockets in ${(fuzzMs / 1000).toFixed(1)} s (seed ${SEED})`,
        `  scripts: ${JSON.stringify(scriptCounts)}`,
        `  by event: ${JSON.stringify(stats.byEvent)} (raw frames ${stats.rawFrames}; ${stats.unencodable} too deep for the client library to encode, not sent)`,
        `  acks: ${stats.withAck} asked, ${stats.replies} answered, ${stats.closedByServer} closed by the server first, ${stats.abandoned} abandoned by the fuzzer, ${stats.timeouts.length} unanswered`,
        `  reply codes: ${JSON.stringify(stats.replyCodes)}`,
        `  disconnects: ${JSON.stringify(stats.disconnectReasons)}; connect errors ${stats.connectErrors}`,
        `  /healthz: ${health.checks} checks, worst ${health.worstMs.toFixed(0)} ms, p99 ${healthP99.toFixed(0)} ms, ${health.failures.length} failures`,
        `  coordinator event-loop lag during the fuzz: p99 ${(lagP99 * 1000).toFixed(1)} ms, max ${(lagMax * 1000).toFixed(1)} ms`,
        `  REST: ${rest.requests} requests ${JSON.stringify(rest.byStatus)}`,
        `  descriptors: ${fdBefore} before, ${fdAfter} after; RSS ${rssBefore.toFixed(0)} MiB before, peak ${rssPeak.toFixed(0)} MiB, ${rssMiB(pid).toFixed(0)} MiB after; error log lines ${errorLogs.length}`,
        ...stats.timeouts.slice(0, 10).map((t) => `  unanswered: ${t}`),
        ...stats.badReplies.slice(0, 10).map((t) => `  bad reply: ${t}`),
        ...errorLogs.slice(0, 10).map((t) => `  error log: ${t}`),
      ].join('\n'),
    );

    expect(node.child.exitCode, stderr.join('')).toBeNull();
    expect(stderr.join('')).not.toMatch(/Unhandled|uncaught|Error/i);
    expect(errorLogs).toEqual([]);
    expect(stats.messages).toBeGreaterThanOrEqual(MIN_MESSAGES);
    expect(stats.timeouts).toEqual([]);
    expect(stats.badReplies).toEqual([]);
    expect(stats.replyCodes.INTERNAL ?? 0).toBe(0);
    expect(Object.keys(stats.disconnectReasons).filter((r) => /ping timeout/.test(r))).toEqual([]);
    expect(health.failures).toEqual([]);
    expect(health.worstMs).toBeLessThan(5_000);
    expect(rest.fiveHundreds).toEqual([]);
    expect(noContributors).toBe(true);
    expect(noLeases).toBe(true);
    expect(fdAfter).toBeLessThanOrEqual(fdBefore);

    // An honest contributor still gets work and the right answer.
    for (const id of fuzzJobs) await fetch(`${node.url}/api/v1/jobs/${id}`, { method: 'DELETE', headers: authHeaders(node.url) });
    const a = { rows: 96, cols: 40, data: randomMatrix(96, 40, 7) };
    const b = { rows: 40, cols: 72, data: randomMatrix(40, 72, 8) };
    const job = await submitMatmul(node.url, a, b);
    const honest = await new SimContributor(node.url).connect();
    const working = honest.run();
    try {
      const done = await waitForJob(node.url, job.id, 60_000);
      expect(done.status).toBe('completed');
      const c = await downloadResult(node.url, job.id);
      expect(c.shape).toEqual([96, 72]);
      expect(maxToleranceRatio(c.data, matmulReference(a.data, b.data, 96, 40, 72), 1e-5, 1e-5)).toBeLessThanOrEqual(1);
      expect(honest.stats.rejected).toBe(0);
    } finally {
      honest.disconnect();
      await working.catch(() => undefined);
    }
  });
});
