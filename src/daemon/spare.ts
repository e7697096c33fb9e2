import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import type { ClusterContext } from '../cluster/context.js';
import { ENDPOINT_KINDS, type EndpointKind } from '../config/types.js';
import { writeFileAtomic } from '../util/fsx.js';
import { LISTEN_ENV, LISTEN_FD, type HeldSocket } from './listen.js';
import { endpointRole } from '../router/processes.js';
import { awaitRole, spareRole, spawnPgmaestro, type ProcessRole } from './spawn.js';

/**
 * A spare (`pgmaestro spare -c FILE`): a process the supervisor keeps
 * started and idle, with every module loaded (configuration, daemon, the
 * endpoints, the SQL parser) and a copy of every endpoint's listening
 * socket, waiting on its stdin for the role to take: `daemon` or an
 * endpoint kind. Starting Node.js and loading pgmaestro takes seconds of CPU
 * on a loaded machine; taking over a role takes milliseconds, so a crashed
 * endpoint is back (its queued clients served) or a crashed daemon is back
 * before anyone notices. A spare whose supervisor goes away (its stdin ends)
 * exits; once it has taken a role it is that role's process, for good.
 */

/** The roles a spare can take. */
export type SpareRole = 'daemon' | EndpointKind;

/** The environment variable naming each endpoint socket the spare got: `rw=3@127.0.0.1:6432 ro=4@…`. */
export const SPARE_FDS_ENV = 'PGMAESTRO_SPARE_FDS';

export function spareFdsEnv(sockets: readonly { kind: EndpointKind; fd: number; host: string; port: number }[]): string {
  return sockets.map((s) => `${s.kind}=${s.fd}@${s.host}:${s.port}`).join(' ');
}

export function parseSpareFds(text: string | undefined): Map<EndpointKind, { fd: number; address: string }> {
  const out = new Map<EndpointKind, { fd: number; address: string }>();
  for (const part of (text ?? '').split(' ')) {
    const m = /^(\w+)=(\d+)@(.+)$/.exec(part);
    if (m && ENDPOINT_KINDS.includes(m[1] as EndpointKind)) out.set(m[1] as EndpointKind, { fd: Number(m[2]), address: m[3] });
  }
  return out;
}

export async function runSpare(open: () => Promise<ClusterContext>): Promise<void> {
  // 1. load everything a role needs, before anyone asks
  const [{ runDaemon }, { runEndpoint }, { makeAutoService }, pgq] = await Promise.all([
    import('./main.js'),
    import('../router/serve.js'),
    import('../router/auto.js'),
    import('libpg-query'),
  ]);
  await pgq.loadModule();
  await open(); // the configuration and the binaries are checked (and their modules warm) now, not at takeover

  // 2. wait for a role; the supervisor gone first means no role will come
  const role = await new Promise<SpareRole | null>((resolve) => {
    let buf = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (d: string) => {
      buf += d;
      const line = buf.split('\n')[0];
      if (buf.includes('\n')) resolve(line === 'daemon' || ENDPOINT_KINDS.includes(line as EndpointKind) ? (line as SpareRole) : null);
    });
    process.stdin.once('end', () => resolve(null));
    process.stdin.once('error', () => resolve(null));
  });
  process.stdin.removeAllListeners();
  process.stdin.destroy();
  if (role === null) return;

  // 3. keep the socket of that role, close the others, and become it
  const fds = parseSpareFds(process.env[SPARE_FDS_ENV]);
  delete process.env[SPARE_FDS_ENV];
  for (const [kind, { fd }] of fds) {
    if (kind === role) continue;
    try {
      fs.closeSync(fd);
    } catch {
      // already closed
    }
  }
  const mine = role === 'daemon' ? undefined : fds.get(role);
  if (mine) process.env[LISTEN_ENV] = `${mine.fd} ${mine.address}`;
  const ctx = await open();
  redirectOutput(role === 'daemon' ? ctx.paths.daemonLog : endpointRole(ctx, role).logFile);
  if (role === 'daemon') await runDaemon(ctx);
  else await runEndpoint(ctx, role, makeAutoService);
}

/**
 * The supervisor's side: keeps one spare running with the endpoint sockets
 * the supervisor holds, hands it a role, and replaces it.
 */
export class SpareKeeper {
  private child: ChildProcess | null = null;
  private key = '';
  private kinds = new Set<EndpointKind>();
  /** Spares in a row that died before taking a role (a broken install): backoff. */
  private failures = 0;
  private notBefore = 0;

  constructor(
    private readonly ctx: ClusterContext,
    private readonly log: (line: string) => void,
    private readonly onExit: () => void,
  ) {}

  /** Starts a spare unless one runs with exactly these sockets (one with others is replaced). */
  ensure(sockets: readonly { kind: EndpointKind; socket: HeldSocket }[]): void {
    const key = sockets.map((s) => `${s.kind}@${s.socket.address.host}:${s.socket.address.port}`).join(' ');
    if (this.child && this.key === key) return;
    if (this.child) void this.retire();
    if (Date.now() < this.notBefore) return;
    const role = spareRole(this.ctx);
    const child = spawnPgmaestro(this.ctx, ['spare'], {
      logFile: role.logFile,
      stdin: 'pipe',
      sockets: sockets.map((s) => s.socket),
      env: { [SPARE_FDS_ENV]: spareFdsEnv(sockets.map((s, i) => ({ kind: s.kind, fd: LISTEN_FD + i, host: s.socket.address.host, port: s.socket.address.port }))) },
    });
    child.stdin!.on('error', () => undefined);
    this.child = child;
    this.key = key;
    this.kinds = new Set(sockets.map((s) => s.kind));
    writeFileAtomic(role.pidFile, `${child.pid}\n`, 0o644);
    child.once('exit', () => {
      if (this.child === child) {
        // died idle: not taken, not retired
        this.child = null;
        this.failures++;
        this.notBefore = Date.now() + Math.max(1000, restartDelay(this.failures));
        this.log(`the spare (pid ${child.pid}) died before taking a role; read ${role.logFile}`);
        removeIf(role.pidFile, child.pid);
      }
      this.onExit();
    });
  }

  /**
   * Gives `role` to the spare; resolves with its pid once it runs the role
   * (its pid file names it). Null when there is no spare fit for it: none
   * runs, or the role's process must get a socket the spare lacks.
   */
  take(role: SpareRole, processRole: ProcessRole, withSocket: boolean): Promise<{ pid: number; spare: true }> | null {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return null;
    if (role !== 'daemon' && withSocket && !this.kinds.has(role)) return null;
    this.child = null;
    this.failures = 0;
    removeIf(spareRole(this.ctx).pidFile, c.pid);
    c.stdin!.end(`${role}\n`);
    return awaitRole(this.ctx, processRole, c, `the spare taking the ${role} role`, 15_000).then((pid) => ({ pid, spare: true as const }));
  }

  /** Stops the idle spare (its stdin ends, then SIGTERM), resolving once it is gone. */
  async retire(): Promise<void> {
    const c = this.child;
    if (!c) return;
    this.child = null;
    removeIf(spareRole(this.ctx).pidFile, c.pid);
    c.stdin!.end();
    c.kill('SIGTERM');
    const deadline = Date.now() + 3000;
    while (c.exitCode === null && c.signalCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
}

/**
 * From here on the process writes to its role's log (where a fresh process of
 * that role writes), not to the spare's. Only what Node.js itself prints on
 * a crash still lands in the spare's log.
 */
function redirectOutput(file: string): void {
  const fd = fs.openSync(file, 'a', 0o600);
  const write = (chunk: string | Uint8Array, enc?: unknown, cb?: unknown): boolean => {
    try {
      fs.writeSync(fd, typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    } catch {
      // a full disk loses log lines, never the process
    }
    const done = typeof enc === 'function' ? enc : cb;
    if (typeof done === 'function') (done as () => void)();
    return true;
  };
  process.stdout.write = write as typeof process.stdout.write;
  process.stderr.write = write as typeof process.stderr.write;
}

function restartDelay(n: number): number {
  return Math.min(30_000, 500 * 2 ** Math.max(0, n - 1));
}

function removeIf(pidFile: string, pid: number | undefined): void {
  try {
    if (fs.readFileSync(pidFile, 'utf8').trim() === String(pid)) fs.rmSync(pidFile);
  } catch {
    // gone
  }
}
