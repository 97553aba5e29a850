import type { LeaseLookup, PanelRecord, PendingResult } from '../store/store';
import type { TrustRecord } from '../trust/reputation';

/** A lease whose job still has its inputs, and the network its result came from (when known). */
export type LiveLease = LeaseLookup & { a: PanelRecord; b: PanelRecord; senderNetwork?: string };

export type Verdict =
  /** Assemble this tile. `agreed`: replicas whose results matched (credited too); `outvoted`: replicas that disagreed. */
  | { kind: 'accept'; agreed?: string[]; outvoted?: string[] }
  /** `confirmed`: a parked replica that the dispute proved right everywhere it differed: it is assembled in this result's place. */
  | { kind: 'reject'; code: 'VERIFICATION_FAILED'; message: string; confirmed?: PendingResult }
  /** Parked until a replica from another contributor agrees. `outvoted`: parked replicas the coordinator found wrong meanwhile (dropped, and struck). */
  | { kind: 'pending'; outvoted?: string[] }
  /**
   * The result is what an honest device returns, and the job cannot be done:
   * its exact answer overflows float32. The job fails with `message`; the
   * sender is not at fault.
   */
  | { kind: 'unrepresentable'; message: string };

/**
 * One verification method: every job type picks one; the dispatcher treats them alike.
 * A verifier whose check cannot finish (time limit, overloaded pool) throws TaskUnavailable.
 */
export interface ResultVerifier {
  verify(lease: LiveLease, tile: Float32Array, submitter: TrustRecord): Promise<Verdict>;
}
