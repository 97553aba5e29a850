import { confusablesMap } from 'confusables';
import { checkDisplayName } from '../../shared/display-name';

/** Longest names, in code points. */
export const MAX_CONTRIBUTOR_NAME = 32;
export const MAX_TEAM_NAME = 40;

/** Characters a reader cannot see: Hangul fillers, zero-width joiners, format controls. */
const INVISIBLE = /[\p{Default_Ignorable_Code_Point}\p{Cf}]/gu;
/**
 * Generic accents (Unicode "Inherited" marks, after canonical decomposition) are
 * dropped: "Zoë" and "Zoe" read alike at a glance. Kana voicing marks are kept,
 * since they tell different Japanese syllables apart (が, か); so are marks that
 * belong to one script (Devanagari vowel signs), which make different words.
 */
const ACCENT = /(?![\u3099\u309a])\p{Script=Inherited}/gu;

function foldOnce(text: string): string {
  let out = '';
  for (const ch of text.normalize('NFD').replace(INVISIBLE, '').replace(ACCENT, '')) out += confusablesMap.get(ch) ?? ch;
  return out;
}

/**
 * The "skeleton" of a name: what it looks like, with invisible characters and
 * accents dropped, confusable characters mapped to Latin (the `confusables`
 * package's table), case and separators dropped, and the classic ASCII
 * look-alikes folded. Two names with the same skeleton look the same to a
 * reader, so only one may exist.
 */
export function nameSkeleton(name: string): string {
  // Folded again after lowercasing: a lowercase form may be a look-alike its capital was not (and "İ" lowercases to i + dot).
  return foldOnce(foldOnce(name.normalize('NFKC')).toLowerCase())
    .normalize('NFC')
    .replace(/[\s._-]+/gu, '')
    .replace(/rn/g, 'm')
    .replace(/vv/g, 'w')
    .replace(/[l1|]/g, 'i')
    .replace(/0/g, 'o');
}

/** The form the leaderboard shows for a contributor without a name: `anonymous-` and an id prefix. */
const ANONYMOUS = nameSkeleton('anonymous');
/** The project's own name, reserved inside any name: "Tessera Support" would pass for the operators. */
const PROJECT = nameSkeleton('tessera');
/** Words that claim to speak for the operators, reserved as words anywhere in a name ("Official Bob", "bob_support"). */
const STAFF_WORDS = ['admin', 'administrator', 'moderator', 'official', 'operator', 'staff', 'support'];
const STAFF_SKELETONS = new Set(STAFF_WORDS.map(nameSkeleton));
/** Names reserved as a whole, on top of the staff words. */
const WHOLE_NAME_SKELETONS = new Set(['system', 'root'].map(nameSkeleton));
const LONGEST_STAFF_WORD = Math.max(...[...STAFF_SKELETONS].map((s) => s.length));

/**
 * The words of a name: split at spaces and separators, at camel-case humps
 * ("BobAdmin") and, for words spelled out a letter at a time ("A d m i n"),
 * joined back together. Digits at either end of a word are also tried without
 * them ("admin1").
 */
function wordsOf(name: string): string[] {
  const parts = name
    .replace(/(\p{Ll})(?=\p{Lu})|(\p{Lu})(?=\p{Lu}\p{Ll})/gu, '$1$2 ')
    .split(/[\s._-]+/u)
    .filter((w) => w.length > 0);
  const words = new Set<string>();
  for (let i = 0; i < parts.length; i++) {
    words.add(parts[i]!);
    words.add(parts[i]!.replace(/^\p{N}+|\p{N}+$/gu, ''));
    let spelled = '';
    for (let j = i; j < parts.length && [...parts[j]!].length === 1 && spelled.length < LONGEST_STAFF_WORD; j++) {
      spelled += parts[j]!;
      words.add(spelled);
    }
  }
  words.delete('');
  return [...words];
}

/** Why a name may not be taken because it would pass for the project, its staff or an unnamed contributor; undefined when it may. */
export function reservedNameProblem(name: string, what = 'name'): string | undefined {
  const skeleton = nameSkeleton(name);
  if (skeleton.startsWith(ANONYMOUS))
    return `${what} may not start with "anonymous" in any spelling: that is how the leaderboard shows contributors without a name; choose another`;
  if (skeleton.includes(PROJECT)) return `${what} may not contain "Tessera" in any spelling: the project's name is reserved; choose another`;
  if (STAFF_SKELETONS.has(skeleton) || WHOLE_NAME_SKELETONS.has(skeleton)) return `${what} "${name}" is reserved for the operators; choose another`;
  const staff = wordsOf(name).find((w) => STAFF_SKELETONS.has(nameSkeleton(w)));
  if (staff !== undefined)
    return `${what} may not use the word "${staff}": ${STAFF_WORDS.join(', ')} are reserved for the operators in any spelling; choose another`;
  return undefined;
}

export type PublicNameCheck = { ok: true; name: string; skeleton: string } | { ok: false; message: string };

/** Everything a public name must pass before it is stored (uniqueness against other contributors is the store's). */
export function checkPublicName(raw: unknown, what = 'name', maxLength = 32): PublicNameCheck {
  const checked = checkDisplayName(raw, what, maxLength);
  if (!checked.ok) return checked;
  const reserved = reservedNameProblem(checked.name, what);
  return reserved ? { ok: false, message: reserved } : { ok: true, name: checked.name, skeleton: nameSkeleton(checked.name) };
}
