import { describe, expect, it } from 'vitest';
import { redactLeaseUrl, redactToken } from '../../server/http/redact';
import { createLogger } from '../../server/logger';

const TOKEN = '3f2c9a71-5b0e-4d8a-9c1f-7e6d5a4b3c2d';

describe('redactToken', () => {
  it('keeps the first 8 characters and marks the cut', () => {
    expect(redactToken(TOKEN)).toBe('3f2c9a71…');
  });
  it('leaves a string of 8 characters or fewer as it is: nothing to cut', () => {
    expect(redactToken('abc')).toBe('abc');
  });
});

describe('redactLeaseUrl', () => {
  it('cuts the token out of result and benchmark URLs, query and all', () => {
    expect(redactLeaseUrl(`/api/v1/leases/${TOKEN}/result`)).toBe('/api/v1/leases/3f2c9a71…/result');
    expect(redactLeaseUrl(`/leases/${TOKEN}/benchmark?x=1`)).toBe('/leases/3f2c9a71…/benchmark?x=1');
    expect(redactLeaseUrl(`http://h:8080/api/v1/leases/${encodeURIComponent(TOKEN)}/result`)).toBe('http://h:8080/api/v1/leases/3f2c9a71…/result');
  });
  it('leaves other URLs alone', () => {
    expect(redactLeaseUrl('/api/v1/jobs/1234567890abcdef')).toBe('/api/v1/jobs/1234567890abcdef');
  });
});

describe('the logger', () => {
  it('redacts a token or a lease URL in any log field that carries one', () => {
    const lines: string[] = [];
    const log = createLogger('info', { write: (s: string) => void lines.push(s) });
    log.error({ url: `/api/v1/leases/${TOKEN}/result`, leaseToken: TOKEN, lease: { token: TOKEN } }, 'request failed');
    const out = lines.join('');
    expect(out).not.toContain(TOKEN);
    expect(JSON.parse(out)).toMatchObject({ url: '/api/v1/leases/3f2c9a71…/result', leaseToken: '3f2c9a71…', lease: { token: '3f2c9a71…' } });
  });
});
