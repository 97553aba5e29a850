import { describe, expect, it } from 'vitest';
import { IdleSessions, MIN_WAKE_INTERVAL_MS } from '../../server/realtime/idle-sessions';

describe('idle sessions', () => {
  it('wakes the longest idle first, and one session at most once per interval', () => {
    const idle = new IdleSessions();
    for (const id of ['a', 'b', 'c']) idle.markIdle(id);
    expect(idle.take(2, 1_000)).toEqual(['a', 'b']);
    idle.markIdle('a'); // asked, got nothing again at once
    expect(idle.take(5, 1_010)).toEqual(['c']);
    expect(idle.anyThrottled(1_010)).toBe(true);
    expect(idle.take(5, 1_000 + MIN_WAKE_INTERVAL_MS)).toEqual(['a']);
    expect(idle.anyThrottled(1_000 + MIN_WAKE_INTERVAL_MS)).toBe(false);
    idle.markIdle('b');
    idle.forget('b');
    expect(idle.take(5, 10_000)).toEqual([]);
  });
});
