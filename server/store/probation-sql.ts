import { PROBATION_MS } from '../trust/reputation';

/**
 * A contributor row's probation, as a select-list item over `contributors c`: the count of bans on
 * the network it was minted from, at most PROBATION_MS before it was minted, or any time after
 * (non-zero: on probation). Plain SQL that SQLite and PostgreSQL read alike.
 */
export const CONTRIBUTOR_PROBATION = `(SELECT COUNT(*) FROM address_bans b WHERE b.prefix = c.address AND b.banned_at >= c.created_at - ${PROBATION_MS}) AS probation`;
