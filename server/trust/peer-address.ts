import type { IncomingHttpHeaders } from 'node:http';
import proxyaddr, { type TrustFunction } from 'proxy-addr';

/**
 * Which peers' X-Forwarded-For to believe, from TESSERA_TRUST_PROXY, read the way Express reads its
 * "trust proxy" setting (server/http/app.ts), so that the contributor channel and the REST API agree on
 * a client's address: "true", "false", a hop count, or a comma-separated list of addresses, subnets and
 * the names loopback, linklocal and uniquelocal.
 */
export function compileTrustProxy(setting: string): TrustFunction {
  if (setting === 'true') return () => true;
  if (setting === 'false') return () => false;
  if (/^\d+$/.test(setting)) {
    const hops = Number(setting);
    return (_address, hop) => hop < hops;
  }
  return proxyaddr.compile(setting.split(',').map((v) => v.trim()).filter(Boolean));
}

/** A connection's client address: its peer's, or the X-Forwarded-For entry the trusted proxies vouch for. */
export function clientAddress(peer: string | undefined, headers: IncomingHttpHeaders, trust: TrustFunction): string | undefined {
  if (!peer) return undefined;
  return proxyaddr({ headers, socket: { remoteAddress: peer } }, trust);
}
