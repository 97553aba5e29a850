import { SimContributor, type Behaviour } from './sim-contributor';

/**
 * A simulated contributor that connects again, with the same token, whenever
 * its connection ends, as the page's Socket.IO client does: each connection is
 * a fresh SimContributor (which never reconnects by itself) on the same URL.
 */
export class ReconnectingContributor {
  /** Connections that said hello; more than one means it came back after losing one. */
  connections = 0;
  verified = 0;
  private current: SimContributor | undefined;
  private stopped = false;
  private token: string | undefined;
  private readonly done: Promise<void>;

  constructor(
    private readonly url: string,
    private readonly behaviour: Behaviour = { kind: 'honest' },
  ) {
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const sim = new SimContributor(this.url, this.behaviour, this.token ? { token: this.token } : {});
      this.current = sim;
      // A lost connection ends this session at once; the old loop may still be waiting on an ack, and is dropped.
      const lost = new Promise<void>((resolve) => sim.socket.once('disconnect', () => resolve()));
      try {
        await sim.connect();
        this.token = sim.token;
        this.connections++;
        await Promise.race([sim.run(), lost]);
      } catch {
        // refused or cut off mid-handshake: try again below
      }
      this.verified += sim.stats.verified;
      sim.disconnect();
      if (!this.stopped) await new Promise((r) => setTimeout(r, 200));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.current?.disconnect();
    await this.done;
  }
}
