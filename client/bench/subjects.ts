/** The bench's subjects: each configuration of our matmul family, the autotuned choice, and the contenders. */
import type { MatmulConfig } from '../../shared/matmul-configs';
import type { MatmulKernel } from '../gpu/matmul-kernel';
import type { BenchSubject } from './runner';

export function configSubject(kernel: MatmulKernel, config: MatmulConfig): BenchSubject {
  return {
    id: config.id,
    label: config.label,
    group: config.production ? 'ours' : 'baseline',
    prepare: (m, k, n, a, b) => kernel.prepare(config, m, k, n, a, b),
  };
}

/** Whatever the device's tuning picks for the shape's size class, as a contributor would run it. */
export function autotunedSubject(kernel: MatmulKernel): BenchSubject {
  return {
    id: 'autotuned',
    label: 'autotuned choice for this GPU',
    group: 'ours',
    async prepare(m, k, n, a, b) {
      const config = kernel.configFor(m, n);
      return Object.assign(await kernel.prepare(config, m, k, n, a, b), { resolved: config.id });
    },
  };
}

export type ContenderSubjectId = 'tfjs-webgpu' | 'ort-webgpu';

/** TF.js and ORT-web load on demand: several megabytes the page needs only when asked to compare. */
export async function contenderSubject(id: ContenderSubjectId, ortWasmBase?: string): Promise<BenchSubject> {
  const { loadContender } = await import('./contenders');
  const contender = await loadContender(id, ortWasmBase === undefined ? {} : { ortWasmBase });
  return {
    id,
    label: `${contender.info.label} ${contender.info.version}`,
    group: 'contender',
    prepare: (m, k, n, a, b) => contender.prepare(m, k, n, a, b),
  };
}
