import { SIZE_CLASS_EDGE, SIZE_CLASSES, type KernelTuning } from '../../shared/matmul-configs';

/** Share of a kernel's best speed at which a tile size counts as efficient for it. */
const EFFICIENT = 0.8;

/**
 * The tuned kernels of the contributors online now. New jobs are cut into
 * tiles no smaller than the size at which the typical contributor's kernel
 * runs efficiently: a big GPU whose kernel only fills itself at 512×512
 * tiles should not be fed 128×128 ones.
 */
export class TuningCensus {
  private readonly bySession = new Map<string, KernelTuning>();

  join(sessionId: string, tuning: KernelTuning): void {
    this.bySession.set(sessionId, tuning);
  }

  leave(sessionId: string): void {
    this.bySession.delete(sessionId);
  }

  /** The median online contributor's smallest efficient tile edge, or undefined when none reported a tuning. */
  preferredMinEdge(): number | undefined {
    const edges = [...this.bySession.values()].map(efficientEdge).sort((a, b) => a - b);
    return edges.length ? edges[(edges.length - 1) >> 1] : undefined;
  }

  /** The median online contributor's tuned speed on medium tiles (GFLOPS), or undefined when none reported one. */
  medianGflops(): number | undefined {
    const speeds = [...this.bySession.values()].map((t) => t.gflops.medium).sort((a, b) => a - b);
    return speeds.length ? speeds[(speeds.length - 1) >> 1] : undefined;
  }
}

export function efficientEdge(t: KernelTuning): number {
  const best = Math.max(...SIZE_CLASSES.map((c) => t.gflops[c]));
  const cls = SIZE_CLASSES.find((c) => t.gflops[c] >= EFFICIENT * best) ?? 'large';
  return SIZE_CLASS_EDGE[cls];
}
