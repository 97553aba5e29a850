import { io } from 'socket.io-client';
import { afterEach, describe, expect, it } from 'vitest';
import type { ContributorStats } from '../../shared/api';
import { PROTOCOL_VERSION, type HelloReply } from '../../shared/protocol';
import { WEBGPU_DEFAULT_LIMITS } from '../../shared/tiling';
import { submitMatmul, waitForJob } from '../support/coordinator';
import { useCoordinatorHarness } from '../support/harness';
import { randomMatrix } from '../support/matrices';
import type { SimSocket } from '../support/sim-contributor';

/**
 * Identities cost something. The coordinator trusts X-Forwarded-For from loopback
 * (TESSERA_TRUST_PROXY=loopback), so each test client here claims the address it
 * would have behind a proxy.
 */
const h = useCoordinatorHarness({ canaries: false, trustProxy: 'loopback', targetTiles: 9 });

const sockets: SimSocket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.disconnect();
});

/** Connects as a client at `ip` (or as a plain loopback client) and says hello, minting an identity unless `token` is known. */
async function hello(ip: string | undefined, token?: string): Promise<{ socket: SimSocket; reply: HelloReply }> {
  const socket: SimSocket = io(h.coord.url, {
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    ...(ip ? { extraHeaders: { 'x-forwarded-for': ip } } : {}),
  });
  sockets.push(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', reject);
  });
  const reply = await socket.timeout(10_000).emitWithAck('hello', {
    protocol: PROTOCOL_VERSION,
    ...(token ? { token } : {}),
    agent: { kind: 'simulated', userAgent: 'vitest' },
    adapter: { vendor: 'cpu', architecture: 'reference', device: '', description: 'sybil test' },
    limits: WEBGPU_DEFAULT_LIMITS,
  });
  return { socket, reply };
}

async function standing(id: string): Promise<{ body: ContributorStats; text: string }> {
  const res = await fetch(`${h.coord.url}/api/v1/contributors/${id}`);
  expect(res.status).toBe(200);
  const text = await res.text();
  return { body: JSON.parse(text) as ContributorStats, text };
}

const codeOf = (reply: HelloReply) => (reply.ok ? 'ok' : reply.error.code);

describe('new identities', () => {
  it('are limited per network and per address; known tokens still join, other networks are independent', async () => {
    await h.start();
    // 25 identities at once from one /24, five from each of five addresses: the network allows 20 an hour.
    const ips = ['203.0.113.1', '203.0.113.2', '203.0.113.3', '203.0.113.4', '203.0.113.5'];
    const flood = await Promise.all(ips.flatMap((ip) => Array.from({ length: 5 }, () => hello(ip))));
    const codes = flood.map((f) => codeOf(f.reply));
    expect(codes.filter((c) => c === 'ok').length).toBe(20);
    expect(codes.filter((c) => c === 'RATE_LIMITED').length).toBe(5);
    const refused = flood.find((f) => !f.reply.ok)!.reply;
    expect(!refused.ok && refused.error.message).toMatch(/^too many new identities from your network; reuse the token an earlier hello gave you, or retry in \d+ s$/);

    // An identity minted earlier joins again with its token, from the same full network.
    const first = flood.find((f) => f.reply.ok)!.reply;
    if (!first.ok) throw new Error('unreachable');
    const again = await hello('203.0.113.9', first.token);
    expect(again.reply).toMatchObject({ ok: true, contributorId: first.contributorId });
    // A hello with no token from that network is still refused.
    expect(codeOf((await hello('203.0.113.200')).reply)).toBe('RATE_LIMITED');

    // Another /24 is not affected; within it, one address gets 5 an hour.
    const other = [];
    for (let i = 0; i < 6; i++) other.push(codeOf((await hello('198.51.100.7')).reply));
    expect(other).toEqual(['ok', 'ok', 'ok', 'ok', 'ok', 'RATE_LIMITED']);
    expect(codeOf((await hello('198.51.100.8')).reply)).toBe('ok');

    // IPv6: addresses in one /64 share its limit.
    const v6 = await Promise.all(Array.from({ length: 22 }, (_, i) => hello(`2001:db8:7:7::${(i % 5) + 1}:${Math.floor(i / 5) + 1}`)));
    expect(v6.filter((f) => f.reply.ok).length).toBe(20);

    // Without a known network (a loopback peer that names no client) nothing is limited: tests and local rigs keep working.
    const local = await Promise.all(Array.from({ length: 8 }, () => hello(undefined)));
    expect(local.every((l) => l.reply.ok)).toBe(true);
  });

  it("starts a banned identity's network's next identities on probation, visible in the public standing", async () => {
    await h.start();
    const cheat = await hello('192.0.2.10');
    if (!cheat.reply.ok) throw new Error('hello failed');
    const cheatId = cheat.reply.contributorId;
    const before = await hello('192.0.2.11');
    if (!before.reply.ok) throw new Error('hello failed');

    // Three malformed messages: three strikes, banned, disconnected.
    const gone = new Promise<void>((r) => cheat.socket.once('disconnect', () => r()));
    const raw = cheat.socket.timeout(5_000) as unknown as { emitWithAck(e: string, p: unknown): Promise<{ ok: boolean; error?: { code: string } }> };
    for (let i = 0; i < 3; i++) expect((await raw.emitWithAck('lease:request', { max: 1000 })).error?.code).toBe('BAD_MESSAGE');
    await gone;
    expect((await standing(cheatId)).body).toMatchObject({ status: 'banned', strikes: 3, trustLevel: 'new' });
    expect((await hello('192.0.2.10', cheat.reply.token)).reply).toMatchObject({ ok: false, error: { code: 'BANNED' } });

    // The next identity from that /24 (another address in it) starts on probation; one from elsewhere does not.
    const next = await hello('192.0.2.99');
    const elsewhere = await hello('192.0.3.99');
    if (!next.reply.ok || !elsewhere.reply.ok) throw new Error('hello failed');
    const { body, text } = await standing(next.reply.contributorId);
    expect(body).toMatchObject({ status: 'active', strikes: 0, trustLevel: 'new', probation: true, verifiedJobs: 0, canariesPassed: 0, firstVerifiedAt: null });
    expect((await standing(elsewhere.reply.contributorId)).body).toMatchObject({ probation: false, trustLevel: 'new' });
    // An identity that shared the network with the cheater may be its spare: it is on probation too.
    expect((await standing(before.reply.contributorId)).body.probation).toBe(true);
    // The public standing never shows where a contributor connects from.
    expect(text).not.toMatch(/192\.0\.2|address|network/i);
  });

  it('earns standing from verified work: GFLOP and distinct jobs, not trusted after one short burst', async () => {
    await h.start();
    const worker = await h.spawn({ kind: 'honest' });
    for (const seed of [1, 2]) {
      const job = await submitMatmul(h.coord.url, { rows: 192, cols: 32, data: randomMatrix(192, 32, seed) }, { rows: 32, cols: 192, data: randomMatrix(32, 192, seed + 1) });
      expect((await waitForJob(h.coord.url, job.id, 30_000)).status).toBe('completed');
    }
    const { body } = await standing(worker.contributorId);
    expect(body.verifiedShards).toBeGreaterThanOrEqual(10);
    expect(body.verifiedGflop).toBeGreaterThan(0);
    expect(body).toMatchObject({ status: 'active', strikes: 0, probation: false, verifiedJobs: 2, trustLevel: 'established' });
    expect(Date.parse(body.firstVerifiedAt!)).toBeLessThanOrEqual(Date.now());
  });
});
