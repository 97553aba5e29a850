import type { RequestHandler } from 'express';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Store } from '../store/store';

/** GPU vendors as a bounded label set: a free-text vendor string would explode the series count. */
const VENDORS = ['nvidia', 'amd', 'intel', 'apple', 'qualcomm', 'arm', 'google', 'microsoft'] as const;

export function vendorLabel(vendor: string): string {
  const v = vendor.toLowerCase();
  return VENDORS.find((known) => v.includes(known)) ?? (v === '' ? 'unknown' : 'other');
}

/**
 * The coordinator's Prometheus metrics. Label sets are bounded (job type,
 * contributor kind, GPU vendor, route template, status): never a contributor
 * or job id. Gauges that describe stored state are read from the store at
 * scrape time, so they are right after a restart too.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly connected = new Map<string, { kind: string; vendor: string }>();

  readonly shardsLeased = new Counter({ name: 'tessera_shards_leased_total', help: 'Leases granted', labelNames: ['job_type'], registers: [this.registry] });
  readonly shardsReturned = new Counter({ name: 'tessera_shards_returned_total', help: 'Results received from contributors', labelNames: ['job_type'], registers: [this.registry] });
  readonly shardsVerified = new Counter({ name: 'tessera_shards_verified_total', help: 'Results that passed verification and were assembled', labelNames: ['job_type'], registers: [this.registry] });
  readonly shardsRejected = new Counter({ name: 'tessera_shards_rejected_total', help: 'Results rejected (failed verification, wrong size, replays, foreign leases)', labelNames: ['job_type'], registers: [this.registry] });
  readonly leaseExpiries = new Counter({ name: 'tessera_lease_expiries_total', help: 'Leases that lapsed and were returned to the queue', registers: [this.registry] });
  readonly verification = new Histogram({
    name: 'tessera_verification_duration_seconds',
    help: 'Time to verify one result',
    labelNames: ['method'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly verificationUnavailable = new Counter({
    name: 'tessera_verification_unavailable_total',
    help: 'Results whose check could not finish (timeout: ran past its limit; overloaded: the verification queue was full; failed; closed), whose shards were requeued without a strike',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly bytesSent = new Counter({ name: 'tessera_contributor_bytes_sent_total', help: 'Panel bytes served to contributors', registers: [this.registry] });
  readonly bytesReceived = new Counter({ name: 'tessera_contributor_bytes_received_total', help: 'Result bytes received from contributors', registers: [this.registry] });
  readonly httpDuration = new Histogram({
    name: 'tessera_http_request_duration_seconds',
    help: 'REST request duration',
    labelNames: ['method', 'route', 'status'],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    registers: [this.registry],
  });

  constructor(store: Store) {
    // Process CPU/memory, GC, and event-loop lag: tessera_nodejs_eventloop_lag_{min,max,mean,p50,p90,p99}_seconds
    // are read from a perf_hooks histogram sampled every 10 ms, which each scrape resets, so they describe
    // the time since the previous scrape.
    collectDefaultMetrics({ register: this.registry, prefix: 'tessera_', eventLoopMonitoringPrecision: 10 });
    const connected = this.connected;
    new Gauge({
      name: 'tessera_contributors_connected',
      help: 'Contributors connected now',
      labelNames: ['kind', 'vendor'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const c of connected.values()) this.inc({ kind: c.kind, vendor: c.vendor });
      },
    });
    this.storeGauge('tessera_queue_shards', 'Shards of active jobs by state', 'state', () => store.shardCounts());
    this.storeGauge('tessera_jobs', 'Jobs by status', 'status', () => store.jobCounts());
  }

  /** A gauge read from the store at each scrape: one series per key of the counts. */
  private storeGauge(name: string, help: string, label: string, read: () => Promise<Record<string, number>>): void {
    new Gauge({
      name,
      help,
      labelNames: [label],
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const [value, n] of Object.entries(await read())) this.set({ [label]: value }, n);
      },
    });
  }

  contributorJoined(sessionId: string, kind: string, vendor: string): void {
    this.connected.set(sessionId, { kind, vendor: vendorLabel(vendor) });
  }

  connectedContributors(): { kind: string; vendor: string }[] {
    return [...this.connected.values()];
  }

  contributorLeft(sessionId: string): void {
    this.connected.delete(sessionId);
  }

  /** Records each request under its route template (e.g. /api/v1/jobs/:id), never the raw path. */
  httpMiddleware(): RequestHandler {
    return (req, res, next) => {
      const end = this.httpDuration.startTimer();
      res.on('finish', () => {
        const route = req.route ? `${req.baseUrl}${String(req.route.path)}` : 'unmatched';
        end({ method: req.method, route, status: String(res.statusCode) });
      });
      next();
    };
  }
}
