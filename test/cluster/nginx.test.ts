import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nginxSite } from '../../scripts/nginx-config';
import { LOCAL_KEY_FILE } from '../../server/auth/api-keys';
import type { JobView } from '../../shared/api';
import { matmulReference, maxToleranceRatio } from '../../shared/matmul-reference';
import { authHeaders, downloadResult, registerLocalKey, submitMatmul, waitForJob } from '../support/coordinator';
import { startCluster, startClusterServices, type ClusterServices, type TestCluster } from '../support/cluster';
import { randomMatrix } from '../support/matrices';
import { startNginx, type NginxProxy } from '../support/nginx';
import { ReconnectingContributor } from '../support/reconnecting-contributor';

let services: ClusterServices | undefined;
let cluster: TestCluster | undefined;
let nginx: NginxProxy | undefined;
let keyDir: string | undefined;

beforeAll(async () => {
  services = await startClusterServices();
  // Short leases: those held through the killed node lapse quickly and the survivor queues them again.
  cluster = await startCluster(services, 2, { TESSERA_CANARIES: 'off', TESSERA_LEASE_BASE_MS: '1500', TESSERA_FINALIZE_POLL_MS: '500' });
  nginx = await startNginx(cluster.nodes.map((n) => new URL(n.url).host));
  // Every node accepts the first node's key; the helpers send it to the URL they are given, here nginx's.
  keyDir = await mkdtemp(join(tmpdir(), 'tessera-nginx-key-'));
  await writeFile(join(keyDir, LOCAL_KEY_FILE), authHeaders(cluster.nodes[0]!.url).authorization!.replace('Bearer ', ''));
  await registerLocalKey(nginx.url, keyDir);
}, 120_000);

afterAll(async () => {
  await nginx?.stop();
  await cluster?.stop();
  await services?.stop();
  if (keyDir) await rm(keyDir, { recursive: true, force: true });
});

/** Contributors connected to one node, from its own /metrics (asked directly, not through nginx). */
async function connectedTo(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return [...text.matchAll(/^tessera_contributors_connected\{[^}]*\} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
}

interface ProgressEvent {
  at: number;
  view: JobView;
}

/**
 * Follows the job's Server-Sent Events through nginx until `end`, as EventSource does: a stream
 * cut off (its node killed) is opened again. Each event is stamped with when it arrived here.
 */
async function followEvents(url: string, jobId: string, events: ProgressEvent[]): Promise<void> {
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      const res = await fetch(`${url}/api/v1/jobs/${jobId}/events`, { headers: authHeaders(url) });
      if (res.status !== 200 || !res.body) throw new Error(`events: ${res.status}`);
      const decoder = new TextDecoder();
      let buffer = '';
      for await (const chunk of res.body) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        let cut: number;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const frame = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const event = /^event: (\w+)$/m.exec(frame)?.[1];
          const data = /^data: (.*)$/m.exec(frame)?.[1];
          if (event === 'end') return;
          if (event === 'progress' && data) events.push({ at: Date.now(), view: JSON.parse(data) as JobView });
        }
      }
    } catch {
      // the node serving the stream went away: reconnect below, as EventSource would after `retry`
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error('event stream never reached its end');
}

describe('nginx in front of two coordinators', () => {
  it('computes a matmul submitted through nginx on contributors connected through nginx, across a SIGKILLed node, with unbuffered progress events', async () => {
    const [a, b] = cluster!.nodes as [TestCluster['nodes'][0], TestCluster['nodes'][0]];
    const proxy = nginx!.url;
    const [m, k, n] = [256, 48, 256];
    const am = randomMatrix(m, k, 31);
    const bm = randomMatrix(k, n, 32);
    const job = await submitMatmul(proxy, { rows: m, cols: k, data: am }, { rows: k, cols: n, data: bm });
    const events: ProgressEvent[] = [];
    const following = followEvents(proxy, job.id, events);

    // Contributors connect through nginx over WebSocket; ip_hash sends every 127.0.0.1 client to the same node.
    const contributors = Array.from({ length: 4 }, () => new ReconnectingContributor(proxy, { kind: 'honest', delayMs: 250 }));
    try {
      const before = await waitForJob(proxy, job.id, 30_000, (j) => j.progress.verified >= 3);
      expect(before.progress.verified).toBeLessThan(before.progress.total);
      const [onA, onB] = [await connectedTo(a.url), await connectedTo(b.url)];
      expect(onA + onB).toBe(4);
      // Kill the node holding the contributors' sockets, so they must come back through nginx to the other.
      const [victim, survivor] = onA >= onB ? [a, b] : [b, a];
      victim.child.kill('SIGKILL');
      await victim.exited;

      const final = await waitForJob(proxy, job.id, 40_000);
      const completedAt = Date.now();
      expect(final.status).toBe('completed');
      expect(await connectedTo(survivor.url)).toBe(4);
      expect(contributors.every((c) => c.connections >= 2)).toBe(true);

      const result = await downloadResult(proxy, job.id);
      expect(result.shape).toEqual([m, n]);
      expect(maxToleranceRatio(result.data, matmulReference(am, bm, m, k, n), 1e-5, 1e-5)).toBeLessThanOrEqual(1);

      await following;
      // Unbuffered: progress reached us while the job was still running, one event at a time, not in a burst at the end.
      const midway = events.filter((e) => e.view.progress.verified > 0 && e.view.progress.verified < e.view.progress.total);
      expect(midway.length).toBeGreaterThanOrEqual(3);
      expect(midway[0]!.at).toBeLessThan(completedAt - 1_000);
      expect(new Set(midway.map((e) => e.at)).size).toBeGreaterThanOrEqual(3);
      expect(events.at(-1)!.view.status).toBe('completed');
    } finally {
      await Promise.all(contributors.map((c) => c.stop()));
    }
  }, 90_000);
});

describe('docs/deploy-nginx.md', () => {
  it('quotes the configuration that scripts/nginx-config.ts generates, which the test above runs', async () => {
    const doc = await readFile(new URL('../../docs/deploy-nginx.md', import.meta.url), 'utf8');
    expect(doc).toContain(`\`\`\`nginx\n${nginxSite({ listen: 80, upstreams: ['10.0.0.11:8080', '10.0.0.12:8080'] })}\`\`\``);
  });
});
