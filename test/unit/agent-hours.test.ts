import { describe, expect, it } from 'vitest';
import { parseHours, withinHours } from '../../agent/hours';

const at = (h: number, m = 0) => new Date(2026, 0, 1, h, m);

describe('agent --hours', () => {
  it('handles windows within a day and across midnight', () => {
    const day = parseHours('09:00-17:30');
    expect(withinHours(day, at(9))).toBe(true);
    expect(withinHours(day, at(17, 29))).toBe(true);
    expect(withinHours(day, at(17, 30))).toBe(false);
    const night = parseHours('22:00-07:00');
    expect(withinHours(night, at(23))).toBe(true);
    expect(withinHours(night, at(3))).toBe(true);
    expect(withinHours(night, at(12))).toBe(false);
    expect(withinHours(parseHours('00:00-00:00'), at(12))).toBe(true);
  });

  it('rejects malformed windows with a message that shows the format', () => {
    for (const bad of ['22-07', '25:00-01:00', '10:60-11:00', 'night']) expect(() => parseHours(bad)).toThrow(/HH:MM-HH:MM/);
  });
});
