import fs from 'node:fs';
import type { ClusterContext } from '../cluster/context.js';
import { loadConfig } from '../config/load.js';
import { ENDPOINT_KINDS, type ClusterConfig, type EndpointKind, type ListenAddress } from '../config/types.js';
import { PgmError } from '../errors.js';
import { endpointRole, formatAddress } from '../router/processes.js';
import { recordEvent } from './events.js';
import { holdListener, type HeldSocket } from './listen.js';
import { SpareKeeper, type SpareRole } from './spare.js';
import { countRestart, daemonPid, daemonRole, livePid, removePidFile, startDetached, supervisorRole, writePidFile, type ProcessRole } from './spawn.js';

/** Backoff between restarts of a process that keeps dying: at once, then 0.5 s doubling to 30 s; one that ran 60 s resets it. */
export function restartDelayMs(consecutive: number): number {
  if (consecutive <= 1) return 0;
  return Math.min(30_000, 500 * 2 ** (consecutive - 2));
}
const STABLE_MS = 60_000;

/** One process the supervisor keeps running: the daemon, or an endpoint. */
interface Kept {
  readonly name: string;
  readonly spareRole: SpareRole;
  readonly role: ProcessRole;
  readonly args: readonly string[];
  /** Endpoints: the address, and the listening socket held for it (null: not held, the process binds itself). */
  readonly address: ListenAddress | null;
  socket: HeldSocket | null;
  /** The pid last seen running. */
  lastPid: number | null;
  starting: boolean;
  /** Deaths in a row of processes that ran less than STABLE_MS. */
  consecutive: number;
  startedAt: number;
  notBefore: number;
  removed: boolean;
  /** A process of the role being stopped because its endpoint moved: not this entry's to adopt. */
  retiring: number | null;
}

/**
 * The supervisor (`pgmaestro supervise`, started by `up`): keeps the daemon
 * and every enabled endpoint process running.
 *
 * - It restarts the daemon after a crash with a backoff, and an endpoint
 *   process at once (with a backoff only if it keeps dying), saying so in
 *   the event log.
 * - It holds each endpoint's listening socket and gives it to every process
 *   it starts for that endpoint, so a client connecting while the endpoint
 *   restarts waits in the kernel's backlog instead of being refused.
 * - It keeps a spare (spare.ts): a process with everything loaded that takes
 *   over a dead role in milliseconds, where a fresh start takes seconds on a
 *   loaded machine; a new spare is started afterwards, in the background.
 * - It adopts the processes that already run (after the supervisor itself was
 *   killed: it then holds no socket for them until they next die), reads the
 *   configuration again on SIGHUP (`up` sends it: an endpoint enabled,
 *   disabled or moved), and leaves everything running when told to stop:
 *   `down` stops the rest itself.
 *
 * It does nothing else, so there is little in it to crash.
 */
export async function runSupervisor(ctx: ClusterContext, intervalMs = 100): Promise<void> {
  const log = (line: string) => process.stdout.write(`${new Date().toISOString()} supervisor: ${line}\n`);
  const role = supervisorRole(ctx);
  const other = livePid(ctx, role);
  if (other !== null && other !== process.pid) {
    throw new PgmError('daemon.failed', `a supervisor already runs for ${ctx.cfg.file} (pid ${other}).`, { hint: 'nothing to do; pgmaestro down stops it.' });
  }
  writePidFile(role);
  const s = new Supervisor(ctx, log, intervalMs);
  process.once('SIGTERM', () => s.stop());
  process.once('SIGINT', () => s.stop());
  process.on('SIGHUP', () => s.reload());
  await s.run();
  removePidFile(role);
}

class Supervisor {
  private readonly kept = new Map<string, Kept>();
  private readonly spare: SpareKeeper;
  private cfg: ClusterConfig;
  private configText: string;
  private stopping = false;
  private wake: (() => void) | null = null;

  constructor(
    private readonly ctx: ClusterContext,
    private readonly log: (line: string) => void,
    private readonly intervalMs: number,
  ) {
    this.cfg = ctx.cfg;
    this.configText = configText(ctx.cfg.file);
    this.spare = new SpareKeeper(ctx, log, () => this.nudge());
    this.keep('daemon', 'daemon', daemonRole(ctx), ['daemon'], null);
    this.syncEndpoints();
    const adopted = [...this.kept.values()].filter((k) => k.lastPid !== null).map((k) => `${k.name} (pid ${k.lastPid})`);
    log(`started (pid ${process.pid})${adopted.length > 0 ? `; adopted ${adopted.join(', ')}` : ''}`);
  }

  stop(): void {
    this.stopping = true;
    this.nudge();
  }

  /** SIGHUP: the configuration again when it changed (endpoints enabled, disabled or moved); the spare is replaced then. */
  reload(): void {
    try {
      const text = configText(this.ctx.cfg.file);
      if (text === this.configText) return;
      this.configText = text;
      this.cfg = loadConfig(this.ctx.cfg.file);
      this.syncEndpoints();
      void this.spare.retire();
      this.log('configuration read again (SIGHUP)');
    } catch (err) {
      this.log(`configuration not read again: ${err instanceof PgmError ? err.render() : String(err)}`);
    }
    this.nudge();
  }

  async run(): Promise<void> {
    while (!this.stopping) {
      for (const k of this.kept.values()) this.check(k);
      // a spare once every role runs, holding every socket held now
      if ([...this.kept.values()].every((k) => !k.starting && k.lastPid !== null && k.notBefore === 0)) this.spare.ensure(this.sockets());
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, this.intervalMs);
      });
      this.wake = null;
    }
    this.log('stopping; the daemon and the endpoints keep running');
    await this.spare.retire();
    for (const k of this.kept.values()) k.socket?.close();
  }

  private nudge(): void {
    this.wake?.();
  }

  private keep(name: string, spareRole: SpareRole, role: ProcessRole, args: readonly string[], address: ListenAddress | null): Kept {
    const k: Kept = { name, spareRole, role, args, address, socket: null, lastPid: livePid(this.ctx, role), starting: false, consecutive: 0, startedAt: Date.now(), notBefore: 0, removed: false, retiring: null };
    this.kept.set(name, k);
    return k;
  }

  private sockets(): { kind: EndpointKind; socket: HeldSocket }[] {
    return [...this.kept.values()].flatMap((k) => (k.socket && k.spareRole !== 'daemon' ? [{ kind: k.spareRole, socket: k.socket }] : []));
  }

  private syncEndpoints(): void {
    for (const kind of ENDPOINT_KINDS) {
      const name = `endpoint ${kind}`;
      const address = this.cfg.endpoints[kind];
      const k = this.kept.get(name);
      let retiring: number | null = null;
      if (k && (!address || !sameAddress(k.address, address))) {
        // disabled or moved: its process stops, its socket is released
        k.removed = true;
        k.socket?.close();
        this.kept.delete(name);
        retiring = livePid(this.ctx, k.role);
        if (retiring !== null) {
          this.log(`${name}: ${address ? `moved to ${formatAddress(address)}` : 'disabled'} in the configuration; stopping pid ${retiring}`);
          process.kill(retiring, 'SIGTERM');
        }
      }
      if (address && !this.kept.get(name)) {
        const n = this.keep(name, kind, endpointRole(this.ctx, kind), ['endpoint', kind], address);
        if (retiring !== null) Object.assign(n, { retiring, lastPid: null });
      }
    }
  }

  /** One role: running (adopt it), or due for a (re)start. */
  private check(k: Kept): void {
    if (k.starting) return;
    const pid = livePid(this.ctx, k.role);
    if (pid !== null && pid === k.retiring) return;
    if (pid !== null) {
      k.lastPid = pid;
      return;
    }
    if (k.notBefore === 0) {
      // just found dead: how long to wait before restarting
      if (k.lastPid !== null) k.consecutive = Date.now() - k.startedAt > STABLE_MS ? 1 : k.consecutive + 1;
      const wait = restartDelayMs(k.consecutive);
      k.notBefore = Date.now() + wait;
      if (wait > 0) this.log(`waiting ${(wait / 1000).toFixed(1)} s before restarting ${k.name} (it died ${k.consecutive - 1} times in a row)`);
    }
    if (Date.now() < k.notBefore) return;
    k.notBefore = 0;
    this.start(k);
  }

  private start(k: Kept): void {
    k.starting = true;
    if (k.address && !k.socket) {
      // nothing listens there now: hold the port from here on (a host name: the process binds it)
      try {
        k.socket = holdListener(k.address);
      } catch (err) {
        this.log(`${k.name}: ${err instanceof PgmError ? err.render() : String(err)}`);
      }
    }
    const was = k.lastPid;
    k.startedAt = Date.now();
    const how = this.spare.take(k.spareRole, k.role, k.socket !== null) ?? startDetached(this.ctx, k.role, k.args, { listen: k.socket, onExit: () => this.nudge() }).then((pid) => ({ pid, spare: false }));
    how
      .then(({ pid, spare }) => {
        if (k.removed) return;
        const by = spare ? ' (the spare took over)' : '';
        if (was !== null) this.event(`${k.name === 'daemon' ? 'the daemon' : k.name} (pid ${was}) was gone; restarted it as pid ${pid}${by} (restart ${countRestart(k.role)})`);
        else this.log(`started ${k.name}${k.address ? ` on ${formatAddress(k.address)}` : ''} (pid ${pid})${by}`);
        k.lastPid = pid;
      })
      .catch((err: unknown) => this.log(`could not start ${k.name}: ${err instanceof PgmError ? err.render() : String(err)}`))
      .finally(() => {
        k.starting = false;
        this.nudge();
      });
  }

  private event(sentence: string): void {
    recordEvent(this.ctx, `supervisor: ${sentence}`).catch(() => undefined); // the process log has it
    this.log(sentence);
  }
}

function configText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function sameAddress(a: ListenAddress | null, b: ListenAddress): boolean {
  return a !== null && a.host === b.host && a.port === b.port;
}

/**
 * `up`: the supervisor, started unless it runs (a running one is told to read
 * the configuration again); then the daemon it keeps running.
 */
export async function ensureSupervised(ctx: ClusterContext): Promise<{ supervisor: number; daemon: number; started: boolean }> {
  let supervisor = livePid(ctx, supervisorRole(ctx));
  if (supervisor === null) supervisor = await startDetached(ctx, supervisorRole(ctx), ['supervise']);
  else process.kill(supervisor, 'SIGHUP');
  const existing = daemonPid(ctx);
  if (existing !== null) return { supervisor, daemon: existing, started: false };
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const pid = daemonPid(ctx);
    if (pid !== null) return { supervisor, daemon: pid, started: true };
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new PgmError('daemon.failed', 'the pgmaestro daemon did not start.', { hint: `read ${ctx.paths.daemonLog} for the cause.` });
}
