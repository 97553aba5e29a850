import { isIPv4, isIPv6 } from 'node:net';

/**
 * The network a contributor's address belongs to, as identities and replicas
 * are compared: an IPv4 address's /24, an IPv6 address's /64 (one home or one
 * cloud instance usually holds a whole /64). An IPv4-mapped IPv6 address is
 * treated as the IPv4 address it carries. Undefined for anything else (a Unix
 * socket, an unknown transport) and for loopback: a coordinator behind a proxy
 * that was not named in TESSERA_TRUST_PROXY sees every peer as 127.0.0.1, and
 * that says nothing about where the peer is.
 */
export function networkPrefix(address: string | undefined): string | undefined {
  if (!address) return undefined;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  const ip = mapped ? mapped[1]! : address;
  if (ip === '::1' || /^127\./.test(ip)) return undefined;
  if (isIPv4(ip)) return `${ip.split('.').slice(0, 3).join('.')}.0/24`;
  if (isIPv6(ip)) return `${expandIPv6(ip).slice(0, 4).join(':')}::/64`;
  return undefined;
}

/** The eight 16-bit groups of an IPv6 address, lower-case, without leading zeros. */
function expandIPv6(ip: string): string[] {
  const bare = ip.split('%')[0]!; // zone index
  const [head, tail] = bare.includes('::') ? bare.split('::') : [bare, undefined];
  const parse = (s: string | undefined) => (s ? s.split(':') : []);
  let left = parse(head);
  let right = parse(tail);
  // An embedded IPv4 tail (::ffff:1.2.3.4 handled above; 64:ff9b::1.2.3.4 here) is two groups.
  const fix = (groups: string[]) =>
    groups.flatMap((g) => {
      if (!g.includes('.')) return [g];
      const [a, b, c, d] = g.split('.').map(Number) as [number, number, number, number];
      return [((a << 8) | b).toString(16), ((c << 8) | d).toString(16)];
    });
  left = fix(left);
  right = fix(right);
  const zeros = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...zeros, ...right].map((g) => parseInt(g, 16).toString(16));
}
