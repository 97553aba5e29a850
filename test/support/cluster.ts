import { rm } from 'node:fs/promises';
import pg from 'pg';
import { makeDataDir } from './coordinator';
import { spawnCoordinator, type CoordinatorProcess } from './coordinator-process';
import { startPostgres, type PostgresCluster } from './postgres';
import { startRedis, type RedisServer } from './redis';

/** Several coordinator processes sharing one PostgreSQL database and one Redis, as in networked mode. */
export interface TestCluster {
  nodes: CoordinatorProcess[];
  /** The shared database's URL. */
  databaseUrl: string;
  /** A direct connection to the shared database, to count what happened. */
  db: pg.Pool;
  /** Starts (or starts again, with its old name and data directory) node `i`. */
  startNode(i: number): Promise<CoordinatorProcess>;
  stop(): Promise<void>;
}

/** Shared services for a test file: one PostgreSQL server and one Redis; each cluster gets a fresh database. */
export interface ClusterServices {
  postgres: PostgresCluster;
  redis: RedisServer;
  stop(): Promise<void>;
}

export async function startClusterServices(): Promise<ClusterServices> {
  const [postgres, redis] = await Promise.all([startPostgres(), startRedis()]);
  return {
    postgres,
    redis,
    async stop() {
      await Promise.allSettled([postgres.stop(), redis.stop()]);
    },
  };
}

export async function startCluster(services: ClusterServices, size: number, env: Record<string, string> = {}): Promise<TestCluster> {
  const databaseUrl = await services.postgres.createDatabase();
  const dataDirs = await Promise.all(Array.from({ length: size }, () => makeDataDir()));
  const nodes: CoordinatorProcess[] = [];
  const startNode = async (i: number) => {
    const nodeEnv = { TESSERA_DATABASE_URL: databaseUrl, TESSERA_REDIS_URL: services.redis.url, TESSERA_NODE_ID: `node-${i}`, ...env };
    // The first node to start creates the local API key, in its data directory; the others use it.
    const node = await spawnCoordinator(dataDirs[i]!, nodeEnv, dataDirs[0]!);
    nodes[i] = node;
    return node;
  };
  for (let i = 0; i < size; i++) await startNode(i);
  const db = new pg.Pool({ connectionString: databaseUrl, max: 2 });
  return {
    nodes,
    databaseUrl,
    db,
    startNode,
    async stop() {
      for (const n of nodes) n.child.kill('SIGKILL');
      await Promise.all(nodes.map((n) => n.exited));
      await db.end();
      await Promise.all(dataDirs.map((d) => rm(d, { recursive: true, force: true })));
    },
  };
}
