import { remove } from 'confusables';

/**
 * The "skeleton" of a name: what it looks like, with confusable characters
 * mapped to Latin (Unicode TR39 data via the `confusables` package), case and
 * separators dropped, and the classic ASCII look-alikes folded. Two names with
 * the same skeleton look the same to a reader, so only one may exist.
 */
export function nameSkeleton(name: string): string {
  return remove(name.normalize('NFKC'))
    .toLowerCase()
    .replace(/[\s._-]+/g, '')
    .replace(/rn/g, 'm')
    .replace(/vv/g, 'w')
    .replace(/[l1|]/g, 'i')
    .replace(/0/g, 'o');
}

/** Names nobody may take: they would pass for the operators. */
export const RESERVED_SKELETONS = new Set(['tessera', 'admin', 'administrator', 'moderator', 'operator', 'system', 'root', 'official', 'staff', 'support'].map(nameSkeleton));
