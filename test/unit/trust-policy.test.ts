import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../../server/realtime/rate-limiter';
import { applyTrustEvent, BAN_STRIKES, canaryRate, DECAY_AFTER, FRESH, NEW_CONTRIBUTOR_RESULTS, replicationRate, type TrustEvent, type TrustRecord } from '../../server/trust/reputation';
import { resultsAgree } from '../../shared/result-compare';
import { matmulReference } from '../../shared/matmul-reference';
import { randomMatrix } from '../support/matrices';

const apply = (events: TrustEvent[], from: TrustRecord = FRESH) => events.reduce(applyTrustEvent, from);

describe('reputation policy', () => {
  it('quarantines on the first strike and bans on the third', () => {
    expect(apply(['rejected']).status).toBe('quarantined');
    expect(apply(['rejected', 'protocol-violation']).status).toBe('quarantined');
    expect(apply(['rejected', 'protocol-violation', 'flood']).status).toBe('banned');
    expect(apply(['canary-failed', 'rejected']).strikes).toBe(BAN_STRIKES);
  });

  it('never bans a contributor that only does verified work', () => {
    const rec = apply(Array.from({ length: 1000 }, () => 'verified' as const));
    expect(rec).toMatchObject({ status: 'active', strikes: 0, verified: 1000 });
  });

  it('forgives a strike after enough clean work, and a banned contributor stays banned', () => {
    const glitch = apply(['rejected', ...Array.from({ length: DECAY_AFTER }, () => 'verified' as const)]);
    expect(glitch).toMatchObject({ status: 'active', strikes: 0 });
    const banned = apply(['rejected', 'rejected', 'rejected', ...Array.from({ length: 500 }, () => 'verified' as const)]);
    expect(banned.status).toBe('banned');
  });

  it('replicates and tests new and quarantined contributors more than trusted ones', () => {
    const trusted = apply(Array.from({ length: NEW_CONTRIBUTOR_RESULTS }, () => 'verified' as const));
    expect(replicationRate(FRESH)).toBe(1);
    expect(replicationRate(apply(['rejected'], trusted))).toBe(1);
    expect(replicationRate(trusted)).toBeLessThan(0.5);
    expect(canaryRate(FRESH)).toBeGreaterThan(canaryRate(trusted));
    expect(canaryRate(apply(['rejected'], trusted))).toBeGreaterThan(canaryRate(FRESH));
  });
});

describe('token bucket', () => {
  it('allows a burst, then the refill rate', () => {
    let t = 0;
    const bucket = new TokenBucket(10, 5, () => t);
    expect(Array.from({ length: 8 }, () => bucket.take()).filter(Boolean).length).toBe(5);
    t += 300; // 3 tokens
    expect(Array.from({ length: 5 }, () => bucket.take()).filter(Boolean).length).toBe(3);
  });
});

describe('replica comparison', () => {
  const [m, k, n] = [32, 512, 32];
  const a = randomMatrix(m, k, 5);
  const b = randomMatrix(k, n, 6);
  const exact = matmulReference(a, b, m, k, n);

  it('accepts two honest float32 results computed in different orders', () => {
    const forward = new Float32Array(m * n);
    const backward = new Float32Array(m * n);
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let f = 0;
        let r = 0;
        for (let p = 0; p < k; p++) f = Math.fround(f + Math.fround(a[i * k + p]! * b[p * n + j]!));
        for (let p = k - 1; p >= 0; p--) r = Math.fround(r + Math.fround(a[i * k + p]! * b[p * n + j]!));
        forward[i * n + j] = f;
        backward[i * n + j] = r;
      }
    expect(resultsAgree(forward, backward, k)).toBe(true);
    expect(resultsAgree(forward, exact, k)).toBe(true);
  });

  it('rejects a scaled, a perturbed or a non-finite result', () => {
    expect(resultsAgree(exact, exact.map((x) => x * 1.001), k)).toBe(false);
    const one = exact.slice();
    one[7]! += 0.01;
    expect(resultsAgree(exact, one, k)).toBe(false);
    const nan = exact.slice();
    nan[0] = NaN;
    expect(resultsAgree(nan, nan, k)).toBe(false);
  });
});
