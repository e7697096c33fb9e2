import fs from 'node:fs';
import { postmasterPid } from './control.js';

/**
 * Makes the PostgreSQL of `dataDir` refuse writes at once, whatever state
 * it is in. SIGQUIT is PostgreSQL's immediate shutdown: every backend exits
 * without acknowledging anything more. A frozen (SIGSTOPped) postmaster
 * cannot pass it on, so it is woken with SIGCONT; whatever is still alive
 * after the grace — the postmaster or any of its backends — is killed
 * outright. Used by node control's fence and by the host's guard, so both
 * fence the same way.
 */
export async function fencePostmaster(dataDir: string, graceMs = 1500): Promise<'fenced' | 'not running'> {
  const pid = postmasterPid(dataDir);
  if (pid === null) return 'not running';
  const children = childPids(pid);
  signal(pid, 'SIGQUIT');
  signal(pid, 'SIGCONT');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && alive(pid)) await new Promise((r) => setTimeout(r, 25));
  for (const p of [pid, ...children, ...childPids(pid)]) if (alive(p)) signal(p, 'SIGKILL');
  return 'fenced';
}

function childPids(parent: number): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent) out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Alive and not a zombie. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
const alive = processAlive;

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}
