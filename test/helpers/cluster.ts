import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { CLI } from './paths.js';

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the real CLI in a child process, as a user would. */
export function cli(args: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliResult> {
  return cliProcess(args, opts).done;
}

/** The same, with a handle on the process (to signal it while it works). */
export function cliProcess(args: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): { child: ChildProcess; done: Promise<CliResult> } {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
    cwd: opts.cwd ?? process.cwd(),
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const done = new Promise<CliResult>((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
  return { child, done };
}

/** A temporary directory the unprivileged PostgreSQL user can traverse. */
export function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pgm-${prefix}-`));
  fs.chmodSync(dir, 0o755);
  return dir;
}

export interface NodeJson {
  name: string;
  role: string;
  reachable: boolean;
  host: string;
  port: number;
  data_dir: string;
  pid: number | null;
  timeline: number | null;
  lsn: string | null;
  lag_bytes: number | null;
  lag_seconds: number | null;
  slot: { name: string; active: boolean } | null;
  dsn: string;
}
export interface StatusJson {
  cluster: string;
  primary: string;
  passfile: string;
  daemon: { running: boolean; pid: number | null; restarts: number; since: string | null; supervisor: { running: boolean; pid: number | null; spare: number | null } };
  endpoints: {
    rw?: string;
    ro?: string;
    auto?: string;
    details: Record<string, { kind: string; running: boolean; primary: string | null; pid: number | null; restarts: number; connections: { current: number; total: number } | null; routes: Record<string, number> | null; replicas: Record<string, string> | null }>;
    dsn: Record<string, string>;
  };
  archive: { archived_lsn: string | null; lag_bytes: number | null } | null;
  nodes: NodeJson[];
}

export class TestCluster {
  readonly file: string;
  constructor(readonly dir: string) {
    this.file = path.join(dir, 'pgmaestro.yaml');
  }

  /** Writes a config with `pgmaestro init`, then lets the caller adjust it. */
  static async init(prefix: string, opts: { portBase: number; replicas?: number; binDir?: string }): Promise<TestCluster> {
    const dir = tempDir(prefix);
    const args = ['init', dir, '--port-base', String(opts.portBase), '--replicas', String(opts.replicas ?? 2)];
    if (opts.binDir) args.push('--bin-dir', opts.binDir);
    const r = await cli(args);
    if (r.code !== 0) throw new Error(`init failed: ${r.stderr}`);
    return new TestCluster(dir);
  }

  run(...args: string[]): Promise<CliResult> {
    return cli([...args, '-c', this.file]);
  }

  async status(): Promise<StatusJson> {
    const r = await this.run('status', '--json');
    if (r.code !== 0) throw new Error(`status failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as StatusJson;
  }

  /** SIGKILLs the supervisor and its spare, so that a daemon killed next stays down (as after a crash without pgmaestro's keeper). */
  async stopKeepers(): Promise<void> {
    const { supervisor } = (await this.status()).daemon;
    for (const pid of [supervisor.pid, supervisor.spare]) {
      if (pid === null) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  }

  node(st: StatusJson, name: string): NodeJson {
    const n = st.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  password(): string {
    return fs.readFileSync(path.join(this.dir, 'secrets', 'superuser.password'), 'utf8').trim();
  }

  async sql<T extends pg.QueryResultRow = pg.QueryResultRow>(port: number, text: string, params: unknown[] = []): Promise<T[]> {
    const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password: this.password(), database: 'postgres' });
    await c.connect();
    try {
      return (await c.query<T>(text, params)).rows;
    } finally {
      await c.end();
    }
  }

  /** Polls until `check` returns true or the time is up. */
  async until(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    while (Date.now() < deadline) {
      try {
        if (await check()) return;
      } catch (err) {
        last = err;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
  }

  /** Stops everything this cluster started and removes its directory. */
  async destroy(): Promise<void> {
    if (process.env.PGM_TEST_KEEP) return;
    await this.run('down').catch(() => undefined);
    for (const pidFile of findFiles(this.dir, 'postmaster.pid')) {
      const pid = Number(fs.readFileSync(pidFile, 'utf8').split('\n')[0]);
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    this.killOwnProcesses();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** SIGKILLs pgmaestro's own processes of this cluster (supervisor first, so that nothing restarts the others). */
  killOwnProcesses(): void {
    for (const f of ['supervisor.pid', 'spare.pid', 'daemon.pid', 'endpoint-rw.pid', 'endpoint-ro.pid', 'endpoint-auto.pid']) {
      try {
        const pid = Number(fs.readFileSync(path.join(this.dir, 'state', f), 'utf8'));
        // only if the pid is still ours (a stale file may name a recycled pid)
        if (fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(this.file)) process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
}

function findFiles(dir: string, name: string, depth = 3): string[] {
  if (depth < 0) return [];
  let out: string[] = [];
  let entries: fs.Dirent[] = [];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isFile() && e.name === name) out.push(p);
    else if (e.isDirectory() && !e.isSymbolicLink()) out = out.concat(findFiles(p, name, depth - 1));
  }
  return out;
}

/** Whether `pid` is a running process (a zombie awaiting its reaper counts as gone). */
export function processAlive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
