import { describe, expect, it } from 'vitest';
import { checkPublicName, nameSkeleton, reservedNameProblem } from '../../server/community/name-skeleton';
import { checkDisplayName } from '../../shared/display-name';

const HANGUL_FILLERS = ['\u3164', '\uffa0', '\u115f', '\u1160'];

function refusal(raw: unknown, what = 'name', max = 32): string {
  const r = checkPublicName(raw, what, max);
  expect(r.ok, `${JSON.stringify(raw)} should be refused`).toBe(false);
  return r.ok ? '' : r.message;
}

describe('display names', () => {
  it('accepts ordinary names in many scripts, normalized, and none of them is reserved', () => {
    const names = [
      'Ada Lovelace', 'rig_07', 'Zoë', 'Jürgen Müller', 'José_99', 'José-María', 'Nguyễn Văn An', 'Ελένη', 'Алексей', 'Дмитрий', '김민수', '山田太郎',
      '山田 太郎', 'ラーメン太郎', '陳大文', 'राम शर्मा', 'தமிழ்', 'ශ්‍රී ලංකා', 'བསྒྲུབས', 'ကျွန်တော်', 'สมชาย', 'محمد', 'נָשִׁים', 'Kaʻahumanu', 'Jo Root', 'Supportive',
    ];
    for (const n of names) expect(checkPublicName(n), n).toEqual({ ok: true, name: n, skeleton: nameSkeleton(n) });
    expect(checkDisplayName('  two   spaces ')).toEqual({ ok: true, name: 'two spaces' });
    expect(checkDisplayName('ＡＢＣ')).toEqual({ ok: true, name: 'ABC' }); // NFKC folds full-width letters
  });

  it('refuses markup, controls and bad lengths, naming what to remove', () => {
    for (const n of ['<img src=x onerror=alert(1)>', '<script>x</script>', 'a"b', "o'neil", 'bell\u0007x']) expect(refusal(n)).toMatch(/letters, digits, spaces, '-', '_' and '\.' only; remove /);
    expect(refusal('<b>x</b>')).toContain('remove "<" (U+003C)');
    expect(refusal('bell\u0007x')).toContain('remove U+0007');
    for (const n of ['x', 'y'.repeat(33), '']) expect(refusal(n)).toBe('name must be 2 to 32 characters long');
    expect(refusal('t'.repeat(41), 'team', 40)).toBe('team must be 2 to 40 characters long');
    expect(refusal('1234')).toBe('name needs at least one letter');
    expect(refusal(42)).toBe('name must be text');
  });

  it('refuses Hangul fillers and every other invisible character, alone or among letters', () => {
    for (const f of HANGUL_FILLERS)
      for (const n of [f, f.repeat(3), f + f + 'x', '김' + f, 'A' + f + 'B', f + '민수']) expect(refusal(n)).toMatch(/^name contains an invisible character \(U\+(115F|1160)\); remove it/);
    // zero width space and joiner, BOM, soft hyphen, word joiner, variation selector, Mongolian vowel separator,
    // grapheme joiner, Khmer inherent vowel, tag letter, right-to-left override, left-to-right mark
    for (const cp of [0x200b, 0x200d, 0xfeff, 0x00ad, 0x2060, 0xfe0f, 0x180e, 0x034f, 0x17b4, 0xe0041, 0x202e, 0x200e]) {
      const ch = String.fromCodePoint(cp);
      expect(refusal(`ab${ch}cd`)).toContain(`invisible character (U+${cp.toString(16).toUpperCase().padStart(4, '0')})`);
      expect(refusal(`${ch}abcd`)).toMatch(/invisible character/);
    }
  });

  it('allows a zero-width joiner only where a script needs it, after a virama', () => {
    expect(checkDisplayName('ශ්\u200dරී').ok).toBe(true);
    expect(checkDisplayName('क्\u200dष').ok).toBe(true);
    expect(refusal('क\u200dष')).toMatch(/invisible character \(U\+200D\)/);
  });

  it('bounds stacked combining marks', () => {
    expect(refusal('e' + '\u0301'.repeat(30))).toBe('name stacks too many marks on "e"; use at most 2 accents (4 marks in all) on one letter');
    expect(refusal('Zalgo' + '\u0300\u0301\u0302')).toMatch(/too many marks on "o"/);
    expect(refusal('ab\u00e9\u0308\u0304')).toMatch(/too many marks on "e"/); // precomposed é carries one already
    expect(checkDisplayName('ab\u00e9\u0308').ok).toBe(true);
    expect(refusal('\u0301ab')).toMatch(/combining mark \(U\+0301\) that is not on a letter/);
    expect(refusal('ab \u0301c')).toMatch(/not on a letter/);
    expect(refusal('a\u20ddb')).toMatch(/enclosing marks such as U\+20DD; remove it/);
    expect(refusal('ཀ' + '\u0f71'.repeat(5))).toMatch(/too many marks/);
  });

  it('refuses names that mix scripts or use scripts full of Latin look-alikes', () => {
    expect(refusal('Р' + 'aypal')).toBe('name mixes scripts (Cyrillic, Latin); use one alphabet'); // Cyrillic Er + Latin
    expect(refusal('Тessera')).toMatch(/mixes scripts/); // Cyrillic Te
    expect(refusal('rig०७')).toMatch(/mixes scripts \(Latin, Devanagari\)/);
    expect(refusal('すし김')).toMatch(/mixes scripts/);
    expect(checkDisplayName('韓國 김민수').ok).toBe(true); // Korean writes Han and Hangul together
    expect(refusal('Ꭲessera')).toMatch(/"Ꭲ" \(U\+13A2\), from a script names cannot use here; use letters of a widely used alphabet/); // Cherokee
    expect(refusal('ǃǃok')).toContain('remove "ǃ" (U+01C3)'); // Latin click letter that looks like '!'
    expect(refusal('abʹc')).toBe('name uses "ʹ" (U+02B9), which is not a letter of any alphabet; remove it'); // a prime, not a letter
  });
});

describe('name skeletons', () => {
  it('gives look-alike names the same skeleton', () => {
    expect(nameSkeleton('NVIDIA')).toBe(nameSkeleton('NVΙDIA')); // Greek capital iota
    expect(nameSkeleton('Paypal')).toBe(nameSkeleton('Раураl')); // all-Cyrillic look-alike
    expect(nameSkeleton('modern')).toBe(nameSkeleton('modem'));
    expect(nameSkeleton('ada lovelace')).toBe(nameSkeleton('Ada_Lovelace'));
    expect(nameSkeleton('Grace Hopper')).toBe(nameSkeleton('GRACE   HOPPER'));
    expect(nameSkeleton('Zoë')).toBe(nameSkeleton('Zoe'));
  });

  it('folds fillers, case, spacing and look-alikes, so the project name is found in any disguise', () => {
    for (const f of HANGUL_FILLERS) expect(nameSkeleton(`Tes${f}sera`)).toBe('tessera');
    for (const n of ['Tessera', 'TESSERA', 'T e s s e r a', 'Тessera', 'tеssеrа', 'ᴛᴇssᴇʀᴀ', 'T\u200be\u200bssera', 'ＴＥＳＳＥＲＡ', 'Tèssera', 'T.E.S.S.E.R.A'])
      expect(nameSkeleton(n), n).toBe('tessera');
    expect(nameSkeleton('が')).not.toBe(nameSkeleton('か')); // kana voicing marks tell syllables apart
    expect(nameSkeleton('राम')).not.toBe(nameSkeleton('रम')); // so do Devanagari vowel signs
  });
});

describe('reserved names', () => {
  it('reserves the anonymous form the leaderboard shows, in any case, spacing or look-alike', () => {
    for (const n of ['anonymous-ad449d', 'ANONYMOUS-AD449D', 'Anonymous ad449d', 'anonymous_ad449d', 'an0nym0us-ad449d', 'ａｎｏｎｙｍｏｕｓ－ad449d', 'a n o n y m o u s', 'anonymous'])
      expect(refusal(n), n).toBe('name may not start with "anonymous" in any spelling: that is how the leaderboard shows contributors without a name; choose another');
    expect(refusal('ΑΝΟΝΥΜΟUS-1')).toMatch(/mixes scripts/); // Greek capitals with a Latin U: caught before the skeleton
    expect(reservedNameProblem('ΑΝΟΝΥΜΟUS-1')).toMatch(/anonymous/); // and the skeleton would catch it too
  });

  it("reserves the project's name anywhere in a name, whatever its case or spacing", () => {
    for (const n of ['Tessera', 'Tessera Admin', 'Tessera Support', 'TESSERA', 'tessera', 'T e s s e r a', 'tessera_fan', 'MyTesseraRig', 'ᴛᴇssᴇʀᴀ', 'Tèssera'])
      expect(refusal(n), n).toBe(`name may not contain "Tessera" in any spelling: the project's name is reserved; choose another`);
    expect(refusal('Tessera Staff', 'team', 40)).toMatch(/^team may not contain "Tessera"/);
  });

  it('reserves staff words as words inside a name, and operator names as whole names', () => {
    for (const [n, word] of [
      ['Official Bob', 'Official'],
      ['bob_support', 'support'],
      ['BobAdmin', 'Admin'],
      ['admin1', 'admin'],
      ['staff.rig', 'staff'],
      ['Operator 7', 'Operator'],
      ['Night Moderator', 'Moderator'],
      ['Bob A d m i n', 'Admin'],
      ['Chief Administrator', 'Administrator'],
    ]) expect(refusal(n!), n).toMatch(new RegExp(`^name may not use the word "${word}": .* are reserved for the operators in any spelling; choose another$`, 'i'));
    for (const n of ['Admin', 'adm1n', 'A d m i n', 'SUPPORT', 'root', 'System', 'Ad Min']) expect(refusal(n), n).toMatch(/is reserved for the operators; choose another$/);
    for (const n of ['Jo Root', 'Supportive', 'Rootbeer', 'Administration', 'Staffordshire', 'Systematic']) expect(reservedNameProblem(n), n).toBeUndefined();
  });
});
