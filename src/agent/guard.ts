import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fencePostmaster, processAlive } from '../postgres/fence.js';
import { postmasterPid } from '../postgres/control.js';
import { removeVip } from '../ha/vip.js';

/**
 * The guard: a watchdog for the primary, one small process per host, apart
 * from the agent. The agent arms it with a deadline each time it renews the
 * primary lease (the moment the lease could expire, minus half the fencing
 * margin); when the deadline passes without a new one, the guard fences the
 * host's primary itself. So a primary whose agent died, froze (SIGSTOP) or
 * hangs still refuses writes before its lease runs out — the case a lease
 * alone cannot cover, since only a live agent can act on it. A hardware
 * watchdog (Patroni's) reboots the machine; this one stops only PostgreSQL.
 *
 * The guard knows no etcd, no network, no configuration: a file written by
 * the agent (atomically, by rename) says what to fence and when; the clock
 * is the system's monotonic clock, which both processes read alike and no
 * wall-clock step can move. It fences at most once per arming, says so in a
 * file the agent turns into an event, and exits when it is disarmed and its
 * agent is gone (a new agent starts a new guard).
 *
 * What it cannot cover: the guard itself killed together with the agent
 * (the agent restarts a missing guard before arming it), or the whole host
 * frozen (then PostgreSQL is frozen too, and a frozen primary commits nothing).
 */

export interface GuardArming {
  readonly node: string;
  readonly dataDir: string;
  /** Monotonic milliseconds (see monoNow) after which the node must not accept writes. */
  readonly deadline: number;
  readonly agentPid: number;
  /** The cluster's VIP on this host, removed with the fence. */
  readonly vip: { readonly address: string; readonly iface: string } | null;
}

export interface GuardFiring {
  readonly node: string;
  readonly at: string;
  /** How far past its deadline the guard fenced. */
  readonly lateMs: number;
  readonly result: 'fenced' | 'not running';
}

export interface GuardFiles {
  readonly arming: string;
  readonly fired: string;
  readonly pid: string;
  readonly log: string;
}

export function guardFiles(stateDir: string, logsDir: string, host: string): GuardFiles {
  return {
    arming: path.join(stateDir, `guard-${host}.json`),
    fired: path.join(stateDir, `guard-${host}.fired.json`),
    pid: path.join(stateDir, `guard-${host}.pid`),
    log: path.join(logsDir, `guard-${host}.log`),
  };
}

/** The system's monotonic clock in ms: the same in every process of the host, unmoved by wall-clock steps. */
export function monoNow(): number {
  return Number(process.hrtime.bigint() / 1_000_000n);
}

/** Arms the guard (or disarms it with null). A rename, so the guard reads the old arming or the new one. */
export function armGuard(files: GuardFiles, arming: GuardArming | null): void {
  if (arming === null) {
    fs.rmSync(files.arming, { force: true });
    return;
  }
  const tmp = `${files.arming}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(arming) + '\n', { mode: 0o600 });
  fs.renameSync(tmp, files.arming);
}

function readJson<T>(file: string): T | null {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch {
    return null;
  }
}

/** The guard's firing since the agent last looked, consumed. */
export function takeFiring(files: GuardFiles): GuardFiring | null {
  const f = readJson<GuardFiring>(files.fired);
  if (f) fs.rmSync(files.fired, { force: true });
  return f;
}

export function guardPid(files: GuardFiles): number | null {
  const pid = Number(readJson<number>(files.pid));
  return Number.isInteger(pid) && pid > 0 && processAlive(pid) ? pid : null;
}

/** Starts the host's guard unless it runs: `argv` runs `pgmaestro agent guard` for this agent (in the agent's own namespace). */
export function ensureGuard(files: GuardFiles, argv: readonly string[]): number {
  const running = guardPid(files);
  if (running !== null) return running;
  const out = fs.openSync(files.log, 'a', 0o600);
  const child = spawn(argv[0], argv.slice(1), { detached: true, stdio: ['ignore', out, out] });
  fs.closeSync(out);
  child.unref();
  fs.writeFileSync(files.pid, `${child.pid}\n`, { mode: 0o644 });
  return child.pid!;
}

/** What the guard does about one arming now: nothing, or fence (pure, for the tests). */
export function guardDue(arming: GuardArming | null, now: number): boolean {
  return arming !== null && now >= arming.deadline;
}

/** The guard's loop (`pgmaestro agent guard`): runs until disarmed with its agent (the one that started it, or the last that armed it) gone. */
export async function runGuard(files: GuardFiles, agentPid: number, tickMs = 100): Promise<void> {
  const log = (line: string) => process.stdout.write(`${new Date().toISOString()} guard: ${line}\n`);
  fs.writeFileSync(files.pid, `${process.pid}\n`, { mode: 0o644 });
  log(`started (pid ${process.pid}) for the agent ${agentPid}`);
  let lastAgent = agentPid;
  for (;;) {
    const arming = readJson<GuardArming>(files.arming);
    if (arming) lastAgent = arming.agentPid;
    const now = monoNow();
    if (guardDue(arming, now)) {
      const a = arming!;
      const pid = postmasterPid(a.dataDir);
      const result = pid === null ? 'not running' : await fencePostmaster(a.dataDir);
      if (a.vip) log(await removeVip(a.vip).catch((err: Error) => `VIP: ${err.message}`));
      const firing: GuardFiring = { node: a.node, at: new Date().toISOString(), lateMs: now - a.deadline, result };
      if (result === 'fenced') fs.writeFileSync(files.fired, JSON.stringify(firing) + '\n', { mode: 0o600 });
      // disarm only what was fired: a new arming written meanwhile stays
      if (readJson<GuardArming>(files.arming)?.deadline === a.deadline) fs.rmSync(files.arming, { force: true });
      log(`${a.node}: ${result === 'fenced' ? `fenced (postmaster ${pid}), ${firing.lateMs} ms past the deadline its agent (pid ${a.agentPid}) set and did not renew` : 'deadline passed, nothing running to fence'}`);
    } else if (!arming && !processAlive(lastAgent)) {
      log('disarmed and no agent left: exiting');
      fs.rmSync(files.pid, { force: true });
      return;
    }
    await new Promise((r) => setTimeout(r, tickMs));
  }
}
