/**
 * Lease tokens are credentials: whoever holds one can return that lease's
 * result. Logs and metrics keep only enough of one to tell leases apart.
 */

const SHOWN = 8;

/** A token as a log line may show it: its first 8 characters and "…". */
export function redactToken(token: string): string {
  return token.length > SHOWN ? `${token.slice(0, SHOWN)}…` : token;
}

/** The lease routes carry the token as a path segment: /api/v1/leases/<token>/result (or /benchmark). */
const LEASE_PATH = /(\/leases\/)([^/?#]+)/g;

/** A URL or path with any lease token in it redacted; everything else as given. */
export function redactLeaseUrl(url: string): string {
  return url.replace(LEASE_PATH, (_, prefix: string, token: string) => `${prefix}${redactToken(safeDecode(token))}`);
}

function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}
