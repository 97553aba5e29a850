import type { Store } from '../store/store';
import { LruMap } from './lru-map';

export interface IdentityLimitsConfig {
  /** New identities per network prefix (/24, /64) per hour, over every coordinator on the store. */
  perNetworkHour: number;
  /** New identities per exact address per hour, on this coordinator. */
  perIpHour: number;
}

export type MintVerdict<T> = { ok: true; value: T } | { ok: false; retryAfterS: number };

const HOUR_MS = 3_600_000;
/** Addresses whose recent mints are remembered; an address pushed out forgets at most perIpHour mints. */
const TRACKED_ADDRESSES = 50_000;

/**
 * Makes identities cost something: a `hello` without a known token mints one, and a ban means
 * nothing if a new identity is free. The per-network count is read from the store (contributors.address
 * and created_at), so it holds across coordinators; the per-address count is kept in memory. A
 * connection with no known network (loopback: a coordinator behind a proxy not named in
 * TESSERA_TRUST_PROXY sees every peer as 127.0.0.1) is not limited, since one limit would then
 * be shared by everyone.
 */
export class IdentityLimits {
  private readonly byAddress = new LruMap<string, number[]>(TRACKED_ADDRESSES);
  /** Mints in progress per network on this node: the count and the insert are one step, so a burst cannot slip through together. */
  private readonly turns = new Map<string, Promise<unknown>>();

  constructor(
    private readonly store: Store,
    private readonly limits: IdentityLimitsConfig,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Runs `mint` (which registers the identity with `network` as its address) if the limits allow one
   * more identity from this address and network, else says how long until one would be allowed.
   */
  async mint<T>(address: string | undefined, network: string | undefined, mint: () => Promise<T>): Promise<MintVerdict<T>> {
    if (!network || !address) return { ok: true, value: await mint() };
    const previous = this.turns.get(network) ?? Promise.resolve();
    const turn = previous.catch(() => undefined).then(() => this.mintInTurn(address, network, mint));
    this.turns.set(network, turn);
    try {
      return await turn;
    } finally {
      if (this.turns.get(network) === turn) this.turns.delete(network);
    }
  }

  private async mintInTurn<T>(address: string, network: string, mint: () => Promise<T>): Promise<MintVerdict<T>> {
    const now = this.now();
    const recent = (this.byAddress.get(address) ?? []).filter((t) => t > now - HOUR_MS);
    if (recent.length >= this.limits.perIpHour) return { ok: false, retryAfterS: retryAfter(recent[0]!, now) };
    const minted = await this.store.identitiesMintedSince(network, now - HOUR_MS);
    if (minted.count >= this.limits.perNetworkHour) return { ok: false, retryAfterS: retryAfter(minted.oldestAt ?? now, now) };
    const value = await mint();
    this.byAddress.set(address, [...recent, now]);
    return { ok: true, value };
  }
}

function retryAfter(oldestMint: number, now: number): number {
  return Math.max(1, Math.ceil((oldestMint + HOUR_MS - now) / 1000));
}
