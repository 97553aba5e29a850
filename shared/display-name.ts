/**
 * Display names and team names: what a contributor may call itself on public
 * pages. Rules, so that a name can neither inject markup nor pass for someone
 * else's:
 * - NFKC-normalized, surrounding space trimmed, inner runs of space collapsed;
 * - letters, combining marks, digits, space, '-', '_', '.' only — no '<', '&',
 *   quotes, controls, zero-width or bidirectional-override characters;
 * - letters from one script (Latin, Greek, Cyrillic, …; Han with kana counts as
 *   one): mixed-script names are the usual look-alike trick ("Рaypal");
 * - a length limit in code points.
 * Uniqueness against look-alikes (the "skeleton") is checked by the server.
 */

export type NameCheck = { ok: true; name: string } | { ok: false; message: string };

const SCRIPTS = ['Latin', 'Greek', 'Cyrillic', 'Armenian', 'Georgian', 'Hebrew', 'Arabic', 'Devanagari', 'Bengali', 'Thai', 'Hangul', 'Ethiopic'] as const;
const SCRIPT_RES = SCRIPTS.map((s) => [s, new RegExp(`\\p{Script=${s}}`, 'u')] as const);
const CJK = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}]/u;

function scriptOf(ch: string): string {
  if (CJK.test(ch)) return 'CJK';
  for (const [name, re] of SCRIPT_RES) if (re.test(ch)) return name;
  return 'Other';
}

export function checkDisplayName(raw: unknown, what = 'name', maxLength = 32): NameCheck {
  if (typeof raw !== 'string') return { ok: false, message: `${what} must be text` };
  const name = raw.normalize('NFKC').trim().replace(/\s+/gu, ' ');
  const length = [...name].length;
  if (length < 2 || length > maxLength) return { ok: false, message: `${what} must be 2 to ${maxLength} characters long` };
  if (!/^[\p{L}\p{M}\p{N} ._-]+$/u.test(name)) return { ok: false, message: `${what} may use letters, digits, spaces, '-', '_' and '.' only` };
  if (!/\p{L}/u.test(name)) return { ok: false, message: `${what} needs at least one letter` };
  const scripts = new Set([...name].filter((ch) => /\p{L}/u.test(ch)).map(scriptOf));
  if (scripts.size > 1) return { ok: false, message: `${what} mixes scripts (${[...scripts].join(', ')}); use one alphabet` };
  return { ok: true, name };
}
