import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { registerLocalKey } from './coordinator';

const repo = fileURLToPath(new URL('../..', import.meta.url));

export interface CoordinatorProcess {
  url: string;
  child: ChildProcess;
  exited: Promise<number | null>;
}

/**
 * Starts `npm start`'s entry point as a real process, to kill it as an operator's machine would.
 * `keyDir`: where the local API key file is (another node's data directory, when several share a database).
 */
export async function spawnCoordinator(dataDir: string, env: Record<string, string> = {}, keyDir = dataDir): Promise<CoordinatorProcess> {
  const profile = process.env.TESSERA_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.TESSERA_CPU_PROF}`] : [];
  const child = spawn(process.execPath, [...profile, '--import', 'tsx', 'server/main.ts'], {
    cwd: repo,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', TESSERA_DATA_DIR: dataDir, TESSERA_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const stderr: string[] = [];
  child.stderr!.on('data', (d: Buffer) => stderr.push(d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`coordinator did not start: ${stderr.join('')}`)), 60_000);
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; url?: string };
        if (entry.msg === 'coordinator listening' && entry.url) {
          clearTimeout(timer);
          resolve(entry.url);
        }
      } catch {
        // not a log line
      }
    });
    void exited.then((code) => reject(new Error(`coordinator exited with ${code}: ${stderr.join('')}`)));
  });
  await registerLocalKey(url, keyDir);
  return { url, child, exited };
}
