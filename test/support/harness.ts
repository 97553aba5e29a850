import { afterEach } from 'vitest';
import type { Config } from '../../server/config';
import { startTestCoordinator, type TestCoordinator } from './coordinator';
import { SimContributor, type Behaviour } from './sim-contributor';

export interface Harness {
  /** The coordinator started by `start` in the current test. */
  readonly coord: TestCoordinator;
  start(overrides?: Partial<Config>): Promise<TestCoordinator>;
  /** Connects a simulated contributor and sets it working. */
  spawn(behaviour?: Behaviour, opts?: ConstructorParameters<typeof SimContributor>[2]): Promise<SimContributor>;
  /** Disconnects this contributor after the test. */
  track(sim: SimContributor): SimContributor;
}

/** One coordinator and its simulated contributors per test, torn down after each. */
export function useCoordinatorHarness(defaults: Partial<Config> = {}): Harness {
  let current: TestCoordinator | undefined;
  const sims: SimContributor[] = [];
  afterEach(async () => {
    for (const s of sims.splice(0)) s.disconnect();
    await current?.dispose();
    current = undefined;
  });
  const h: Harness = {
    get coord() {
      if (!current) throw new Error('call start() first');
      return current;
    },
    async start(overrides = {}) {
      await current?.dispose();
      current = await startTestCoordinator({ ...defaults, ...overrides });
      return current;
    },
    async spawn(behaviour = { kind: 'honest' }, opts = {}) {
      const s = h.track(await new SimContributor(h.coord.url, behaviour, opts).connect());
      void s.run().catch(() => undefined);
      return s;
    },
    track(sim) {
      sims.push(sim);
      return sim;
    },
  };
  return h;
}
