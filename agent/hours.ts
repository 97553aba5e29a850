/** A daily window such as 22:00-07:00 (crossing midnight) or 09:00-17:30, in local time. */
export interface HoursWindow {
  startMin: number;
  endMin: number;
}

export function parseHours(text: string): HoursWindow {
  const m = /^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$/.exec(text.trim());
  const parts = m ? m.slice(1).map(Number) : [];
  const [h1, m1, h2, m2] = parts as [number, number, number, number];
  if (!m || h1 > 23 || h2 > 24 || m1 > 59 || m2 > 59 || (h2 === 24 && m2 !== 0)) {
    throw new Error(`--hours takes HH:MM-HH:MM in 24-hour local time, e.g. 22:00-07:00; got "${text}"`);
  }
  return { startMin: h1 * 60 + m1, endMin: h2 * 60 + m2 };
}

export function withinHours(w: HoursWindow, date: Date): boolean {
  const now = date.getHours() * 60 + date.getMinutes();
  if (w.startMin === w.endMin) return true; // the whole day
  return w.startMin < w.endMin ? now >= w.startMin && now < w.endMin : now >= w.startMin || now < w.endMin;
}
