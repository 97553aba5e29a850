/**
 * Display names and team names: what a contributor may call itself on public
 * pages. Rules, so that a name can neither inject markup, hide, nor pass for
 * someone else's:
 * - NFKC-normalized, surrounding space trimmed, inner runs of space collapsed;
 * - nothing invisible: no default-ignorable code points (Hangul fillers such as
 *   U+3164, zero-width and bidirectional controls, variation selectors, soft
 *   hyphens) and no format characters. The one exception is a zero-width
 *   joiner or non-joiner right after a virama, which Sinhala and Indic names
 *   need to choose a conjunct form (as IDNA allows);
 * - letters, combining marks, digits, space, '-', '_', '.' only — no '<', '&',
 *   quotes or controls; every mark sits on a letter or digit, at most 2 accents
 *   (Unicode "Inherited" marks) and at most 4 marks in all on one character
 *   once decomposed (Vietnamese "ệ" is two; Tibetan stacks need up to four), so
 *   stacked diacritics cannot spill over the page;
 * - letters from one writing system, drawn from the scripts Unicode recommends
 *   for identifiers (UAX #31): mixed-script names are the usual look-alike trick
 *   ("Рaypal"), and rare scripts are where most look-alikes of Latin live
 *   (Cherokee "Ꭲ"). Japanese may mix Han and kana, Korean Han and Hangul,
 *   Chinese Han and Bopomofo;
 * - a length limit in code points.
 * Reserved names and uniqueness against look-alikes (the "skeleton") are
 * checked by the server (server/community/name-skeleton.ts).
 */

export type NameCheck = { ok: true; name: string } | { ok: false; message: string };

/** UAX #31 table 4 (Recommended Scripts), each with the writing systems it belongs to. */
const SCRIPT_SYSTEMS: Record<string, readonly string[]> = {
  Latin: ['Latin'],
  Greek: ['Greek'],
  Cyrillic: ['Cyrillic'],
  Armenian: ['Armenian'],
  Georgian: ['Georgian'],
  Hebrew: ['Hebrew'],
  Arabic: ['Arabic'],
  Thaana: ['Thaana'],
  Devanagari: ['Devanagari'],
  Bengali: ['Bengali'],
  Gurmukhi: ['Gurmukhi'],
  Gujarati: ['Gujarati'],
  Oriya: ['Oriya'],
  Tamil: ['Tamil'],
  Telugu: ['Telugu'],
  Kannada: ['Kannada'],
  Malayalam: ['Malayalam'],
  Sinhala: ['Sinhala'],
  Thai: ['Thai'],
  Lao: ['Lao'],
  Tibetan: ['Tibetan'],
  Myanmar: ['Myanmar'],
  Khmer: ['Khmer'],
  Ethiopic: ['Ethiopic'],
  Hangul: ['Korean'],
  Hiragana: ['Japanese'],
  Katakana: ['Japanese'],
  Bopomofo: ['Chinese'],
  Han: ['Japanese', 'Chinese', 'Korean'],
};
const SCRIPT_RES = Object.entries(SCRIPT_SYSTEMS).map(([name, systems]) => ({ name, systems, re: new RegExp(`\\p{Script_Extensions=${name}}`, 'u') }));
const SHARED_BY_ALL = /[\p{Script_Extensions=Common}\p{Script_Extensions=Inherited}]/u;
/** Letters of no single script that names still need: the Hawaiian ʻokina and the modifier apostrophe (both Allowed in UTS #39). */
const SHARED_LETTERS = new Set(['\u02bb', '\u02bc']);

const INVISIBLE = /[\p{Default_Ignorable_Code_Point}\p{Cf}]/u;
const JOINERS = new Set(['\u200c', '\u200d']);
/** Code points of canonical combining class 9 (virama) in the recommended scripts. */
const VIRAMAS = new Set([...'\u094d\u09cd\u0a4d\u0acd\u0b4d\u0bcd\u0c4d\u0ccd\u0d3b\u0d3c\u0d4d\u0dca\u0e3a\u0eba\u0f84\u1039\u103a\u17d2']);
/** Latin click letters: they look exactly like '|', '‖', '‡' and '!', which names may not use. */
const PUNCTUATION_LOOKALIKES = /[\u01c0-\u01c3]/u;
const MAX_ACCENTS = 2;
const MAX_MARKS = 4;

function codePoint(ch: string): string {
  return `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** How a character is named in a message: its code point, and the glyph when it is safe and visible. */
function describe(ch: string): string {
  return /[\p{L}\p{N}\p{P}\p{S}]/u.test(ch) ? `"${ch}" (${codePoint(ch)})` : codePoint(ch);
}

/** The writing systems a character may belong to; null when it fits any (space, '-', ASCII digits, generic accents). */
function systemsOf(ch: string): { scripts: string[]; systems: Set<string> } | null | 'unsupported' {
  const matched = SCRIPT_RES.filter((s) => s.re.test(ch));
  if (matched.length > 0) return { scripts: matched.map((s) => s.name), systems: new Set(matched.flatMap((s) => s.systems)) };
  return SHARED_BY_ALL.test(ch) ? null : 'unsupported';
}

function invisibleProblem(name: string, what: string): string | undefined {
  const chars = [...name];
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (!INVISIBLE.test(ch)) continue;
    if (JOINERS.has(ch) && i > 0 && VIRAMAS.has(chars[i - 1]!)) continue;
    return `${what} contains an invisible character (${codePoint(ch)}); remove it and use visible letters only`;
  }
  return undefined;
}

function markProblem(name: string, what: string): string | undefined {
  let base: string | undefined;
  let accents = 0;
  let marks = 0;
  // Counted on the canonical decomposition: "é" is e and an accent, so precomposed letters cannot carry extra.
  for (const ch of name.normalize('NFD')) {
    if (JOINERS.has(ch)) continue; // already allowed only after a virama
    if (!/\p{M}/u.test(ch)) {
      base = /[\p{L}\p{N}]/u.test(ch) ? ch : undefined;
      accents = marks = 0;
      continue;
    }
    if (/\p{Me}/u.test(ch)) return `${what} may not use enclosing marks such as ${codePoint(ch)}; remove it`;
    if (base === undefined) return `${what} has a combining mark (${codePoint(ch)}) that is not on a letter; remove it or put it after a letter`;
    marks++;
    if (/\p{Script=Inherited}/u.test(ch)) accents++;
    if (accents > MAX_ACCENTS || marks > MAX_MARKS)
      return `${what} stacks too many marks on "${base}"; use at most ${MAX_ACCENTS} accents (${MAX_MARKS} marks in all) on one letter`;
  }
  return undefined;
}

function scriptProblem(name: string, what: string): string | undefined {
  let common: Set<string> | undefined;
  const seen: string[] = [];
  for (const ch of name) {
    if (!/[\p{L}\p{M}\p{N}]/u.test(ch)) continue;
    const found = systemsOf(ch);
    if (found === null) {
      if (/\p{L}/u.test(ch) && !SHARED_LETTERS.has(ch)) return `${what} uses ${describe(ch)}, which is not a letter of any alphabet; remove it`;
      continue;
    }
    if (found === 'unsupported') return `${what} uses ${describe(ch)}, from a script names cannot use here; use letters of a widely used alphabet`;
    if (!seen.includes(found.scripts[0]!)) seen.push(found.scripts[0]!);
    common = common ? new Set([...common].filter((s) => found.systems.has(s))) : found.systems;
    if (common.size === 0) return `${what} mixes scripts (${seen.join(', ')}); use one alphabet`;
  }
  return undefined;
}

export function checkDisplayName(raw: unknown, what = 'name', maxLength = 32): NameCheck {
  if (typeof raw !== 'string') return { ok: false, message: `${what} must be text` };
  const normalized = raw.normalize('NFKC');
  // Before spaces are collapsed: JavaScript counts U+FEFF as a space, but it is an invisible character.
  const invisible = invisibleProblem(normalized, what);
  if (invisible) return { ok: false, message: invisible };
  const name = normalized.trim().replace(/\s+/gu, ' ');
  const length = [...name].length;
  if (length < 2 || length > maxLength) return { ok: false, message: `${what} must be 2 to ${maxLength} characters long` };
  const bad = [...name].find((ch) => !/[\p{L}\p{M}\p{N} ._\-\u200c\u200d]/u.test(ch) || PUNCTUATION_LOOKALIKES.test(ch));
  if (bad !== undefined) return { ok: false, message: `${what} may use letters, digits, spaces, '-', '_' and '.' only; remove ${describe(bad)}` };
  if (!/\p{L}/u.test(name)) return { ok: false, message: `${what} needs at least one letter` };
  const problem = markProblem(name, what) ?? scriptProblem(name, what);
  return problem ? { ok: false, message: problem } : { ok: true, name };
}
