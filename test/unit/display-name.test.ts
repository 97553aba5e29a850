import { describe, expect, it } from 'vitest';
import { nameSkeleton, RESERVED_SKELETONS } from '../../server/community/name-skeleton';
import { checkDisplayName } from '../../shared/display-name';

describe('display names', () => {
  it('accepts ordinary names in any single script, normalized', () => {
    for (const n of ['Ada Lovelace', 'rig_07', 'Ελένη', 'Дмитрий', '山田 太郎', 'José-María']) expect(checkDisplayName(n)).toEqual({ ok: true, name: n });
    expect(checkDisplayName('  two   spaces ')).toEqual({ ok: true, name: 'two spaces' });
    expect(checkDisplayName('ＡＢＣ')).toEqual({ ok: true, name: 'ABC' }); // NFKC folds full-width letters
  });

  it('refuses markup, controls, invisible characters and bad lengths', () => {
    for (const n of ['<img src=x onerror=alert(1)>', '<script>x</script>', 'a"b', "o'neil", 'bell\u0007x', 'zero\u200bwidth', 'bidi\u202eevil', 'x', 'y'.repeat(33), '1234', '', 42])
      expect(checkDisplayName(n).ok, String(n)).toBe(false);
  });

  it('refuses names that mix scripts, the usual look-alike trick', () => {
    const fake = checkDisplayName('Р' + 'aypal'); // Cyrillic Er + Latin
    expect(fake.ok).toBe(false);
    if (!fake.ok) expect(fake.message).toMatch(/mixes scripts/);
  });

  it('gives look-alike names the same skeleton and reserves operator names', () => {
    expect(nameSkeleton('NVIDIA')).toBe(nameSkeleton('NVΙDIA')); // Greek capital iota
    expect(nameSkeleton('Paypal')).toBe(nameSkeleton('Раураl')); // all-Cyrillic look-alike
    expect(nameSkeleton('modern')).toBe(nameSkeleton('modem'));
    expect(nameSkeleton('ada lovelace')).toBe(nameSkeleton('Ada_Lovelace'));
    expect(RESERVED_SKELETONS.has(nameSkeleton('Tessera'))).toBe(true);
    expect(RESERVED_SKELETONS.has(nameSkeleton('ADMlN'))).toBe(true);
  });
});
