import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { PgmError } from '../errors.js';
import { run, type ExecResult, type RunAs } from '../postgres/exec.js';

/**
 * A lab of separate "hosts" on one machine (root only): a bridge `pgmbrN` in
 * the root namespace holding 10.213.N.1/24, and per host a network namespace
 * `pgm-<lab>-<host>` whose `eth0` (one end of a veth pair; the other end,
 * `pgmvNxI`, is a port of the bridge) holds 10.213.N.(11+I)/24, with loopback up.
 *
 * Guarantees:
 * - The namespaces have no default route: traffic from a host can only reach
 *   the lab's subnet (its peers and the root namespace's bridge address).
 * - N is claimed atomically (creating the bridge fails if it exists), so labs
 *   created concurrently by different processes never share a bridge or subnet.
 * - The bridge's alias records the lab and the owning pid, so
 *   `destroyStaleLabs()` removes only labs whose owner is dead.
 * - `destroy()` kills what runs in the namespaces and removes every interface
 *   and namespace of the lab; it is idempotent.
 */

export interface LabHost {
  readonly name: string;
  readonly netns: string;
  /** The host's interface inside its namespace (always `eth0`, like a real host). */
  readonly iface: string;
  readonly address: string;
  /** The bridge-side end of the host's veth pair, in the root namespace. */
  readonly hostIf: string;
}

/** tbf settings; see `NetLab.delay` for the delay they produce. */
export interface ShapeOptions {
  readonly rateKbit?: number;
  readonly burstBytes?: number;
  readonly latencyMs?: number;
}

const NAME = /^[a-z0-9]{1,10}$/;
const LAB_ALIAS = /^pgmaestro lab=([a-z0-9]+) pid=(\d+)$/;

export class NetLab {
  readonly lab: string;
  /** N: the lab's bridge is pgmbrN and its subnet 10.213.N.0/24. */
  readonly index: number;
  readonly hosts: readonly LabHost[];

  /** A lab built earlier (by another process), from what `create` returned. */
  static attach(lab: string, index: number, hosts: readonly LabHost[]): NetLab {
    return new NetLab(lab, index, hosts);
  }

  private constructor(lab: string, index: number, hosts: readonly LabHost[]) {
    this.lab = lab;
    this.index = index;
    this.hosts = hosts;
  }

  get bridge(): string {
    return `pgmbr${this.index}`;
  }
  /** The root namespace's address on the lab's subnet. */
  get gateway(): string {
    return `10.213.${this.index}.1`;
  }
  get subnet(): string {
    return `10.213.${this.index}.0/24`;
  }

  /**
   * Builds the lab; on any failure removes what it built and throws. `ownerPid`
   * is the process whose death makes the lab stale (default: this one); a
   * cluster's lab outlives its commands, so pgmaestro passes 1 and destroys it
   * on `down`.
   */
  static async create(lab: string, hostNames: readonly string[], ownerPid = process.pid): Promise<NetLab> {
    if (hostNames.length === 0 || hostNames.length > 200 || new Set(hostNames).size !== hostNames.length) {
      throw new PgmError('usage', `a lab needs 1 to 200 distinct host names, not ${hostNames.length}.`, { hint: 'name each host once.' });
    }
    for (const n of [lab, ...hostNames]) {
      if (!NAME.test(n)) throw new PgmError('usage', `'${n}' is not a usable lab or host name.`, { hint: 'use 1 to 10 lowercase letters or digits.' });
    }
    await destroyStaleLabs();
    if ((await labBridges()).some((b) => b.lab === lab)) {
      throw new PgmError('usage', `a lab named ${lab} already exists and its owner is alive.`, { hint: 'choose another lab name, or destroy that lab first.' });
    }
    const index = await claimBridge(lab, ownerPid);
    const hosts = hostNames.map((name, i): LabHost => ({ name, netns: `pgm-${lab}-${name}`, iface: 'eth0', address: `10.213.${index}.${11 + i}`, hostIf: `pgmv${index}x${i}` }));
    const l = new NetLab(lab, index, hosts);
    const created: string[] = [];
    try {
      await ip(['addr', 'add', `${l.gateway}/24`, 'dev', l.bridge]);
      await ip(['link', 'set', l.bridge, 'up']);
      for (const h of hosts) {
        await ip(['netns', 'add', h.netns]);
        created.push(h.netns);
        await ip(['link', 'add', h.hostIf, 'type', 'veth', 'peer', 'name', h.iface, 'netns', h.netns]);
        await ip(['link', 'set', h.hostIf, 'master', l.bridge, 'up']);
        await ip(['netns', 'exec', h.netns, 'ip', 'link', 'set', 'lo', 'up']);
        await ip(['netns', 'exec', h.netns, 'ip', 'addr', 'add', `${h.address}/24`, 'dev', h.iface]);
        await ip(['netns', 'exec', h.netns, 'ip', 'link', 'set', h.iface, 'up']);
      }
    } catch (err) {
      for (const ns of created) await removeNetns(ns);
      await removeLinks(index);
      throw err;
    }
    return l;
  }

  host(name: string): LabHost {
    const h = this.hosts.find((x) => x.name === name);
    if (!h) throw new PgmError('node.unknown', `lab ${this.lab} has no host '${name}'.`, { hint: `use one of ${this.hosts.map((x) => x.name).join(', ')}.` });
    return h;
  }

  /** Runs a program to completion inside the host's namespace (as `user` when given), without a shell. */
  exec(host: string, cmd: string, args: readonly string[], opts: { user?: RunAs; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<ExecResult> {
    return run('ip', ['netns', 'exec', this.host(host).netns, ...asUser(opts.user), cmd, ...args], { timeoutMs: opts.timeoutMs, env: opts.env });
  }

  /** Starts a long-running program inside the host's namespace; the caller owns the child. */
  spawn(host: string, cmd: string, args: readonly string[], opts: { user?: RunAs; env?: NodeJS.ProcessEnv; stdio?: StdioOptions } = {}): ChildProcess {
    return spawn('ip', ['netns', 'exec', this.host(host).netns, ...asUser(opts.user), cmd, ...args], {
      env: { ...process.env, ...opts.env },
      stdio: opts.stdio ?? ['ignore', 'pipe', 'pipe'],
    });
  }

  /** Cuts the host off the bridge (its own eth0 stays up but loses carrier), like a pulled cable. */
  async cut(host: string): Promise<void> {
    await ip(['link', 'set', this.host(host).hostIf, 'down']);
  }

  async restore(host: string): Promise<void> {
    await ip(['link', 'set', this.host(host).hostIf, 'up']);
  }

  /**
   * Shapes the host's link both ways with tbf (this kernel has no netem, so
   * there is no fixed added latency). tbf is a rate limiter: a packet waits
   * only behind the bytes queued ahead of it. An idle link lets `burstBytes`
   * through at once; beyond that every byte costs 8/rateKbit ms, and a packet
   * that would wait more than `latencyMs` is dropped (TCP retransmits it after
   * its RTO, ≥ 200 ms). So a small probe on an idle link is barely delayed,
   * while a transfer of B bytes takes about B·8/rateKbit ms: with the defaults
   * (64 kbit, 1600 B, 2 s) a 16 KB answer takes ~2 s, and any traffic that
   * keeps the queue full makes everyone wait up to `latencyMs` — a congested
   * link, not a long one.
   */
  async delay(host: string, opts: ShapeOptions = {}): Promise<void> {
    const h = this.host(host);
    const tbf = ['root', 'tbf', 'rate', `${opts.rateKbit ?? 64}kbit`, 'burst', String(opts.burstBytes ?? 1600), 'latency', `${opts.latencyMs ?? 2000}ms`];
    await run('tc', ['qdisc', 'replace', 'dev', h.hostIf, ...tbf]).then(check('tc qdisc replace'));
    await run('ip', ['netns', 'exec', h.netns, 'tc', 'qdisc', 'replace', 'dev', h.iface, ...tbf]).then(check('tc qdisc replace'));
  }

  async undelay(host: string): Promise<void> {
    const h = this.host(host);
    await run('tc', ['qdisc', 'del', 'dev', h.hostIf, 'root']);
    await run('ip', ['netns', 'exec', h.netns, 'tc', 'qdisc', 'del', 'dev', h.iface, 'root']);
  }

  /** Kills every process in the lab's namespaces and removes the namespaces, veths and bridge; idempotent. */
  async destroy(): Promise<void> {
    for (const h of this.hosts) await removeNetns(h.netns);
    await removeLinks(this.index);
  }
}

/**
 * Removes the labs left by processes that died without destroying them, and
 * returns their names. A bridge without our alias is being created right now
 * (the alias is set just after the bridge) and is left alone.
 */
export async function destroyStaleLabs(): Promise<string[]> {
  const live = new Set<string>();
  const removed = new Set<string>();
  for (const b of await labBridges()) {
    if (b.lab === null || b.pid === null) continue;
    if (alive(b.pid)) {
      live.add(b.lab);
    } else {
      removed.add(b.lab);
      await removeLinks(b.index);
    }
  }
  // Namespaces whose lab has no live owner (bridge stale, or gone after a crash mid-destroy).
  for (const ns of await labNamespaces()) {
    const lab = ns.split('-')[1];
    if (live.has(lab)) continue;
    removed.add(lab);
    await removeNetns(ns);
  }
  return [...removed];
}

/** Whether this process can build labs; the reason when it cannot. */
export async function netnsUnsupported(): Promise<string | null> {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  const probe = `pgm-probe${process.pid}`;
  try {
    const r = await run('ip', ['netns', 'add', probe]);
    if (r.code !== 0) return `ip netns add failed: ${r.stderr.trim()}`;
    return null;
  } catch (err) {
    return `ip is not available (${(err as Error).message}); install iproute2`;
  } finally {
    await run('ip', ['netns', 'del', probe]).catch(() => undefined);
  }
}

async function claimBridge(lab: string, ownerPid: number): Promise<number> {
  const used = (await run('ip', ['-o', '-4', 'addr', 'show'])).stdout;
  for (let n = 1; n < 255; n++) {
    if (used.includes(` 10.213.${n}.`)) continue;
    const r = await run('ip', ['link', 'add', `pgmbr${n}`, 'type', 'bridge']);
    if (r.code !== 0) {
      if (/exists/i.test(r.stderr)) continue;
      throw new PgmError('daemon.failed', `cannot create bridge pgmbr${n}: ${r.stderr.trim()}.`, { hint: 'run as root on a kernel with bridge support.' });
    }
    await ip(['link', 'set', `pgmbr${n}`, 'alias', `pgmaestro lab=${lab} pid=${ownerPid}`]);
    return n;
  }
  throw new PgmError('daemon.failed', 'no free lab bridge: pgmbr1 to pgmbr254 are all taken.', { hint: 'destroy old labs (ip link del pgmbrN).' });
}

/** Deletes the lab's root-namespace ends of its veths, then its bridge. */
async function removeLinks(index: number): Promise<void> {
  // A namespace's veth end (and so the pair) goes only once no process holds the namespace: delete our ends too.
  for (const l of await links()) if (new RegExp(`^pgmv${index}x\\d+$`).test(l.ifname)) await run('ip', ['link', 'del', l.ifname]);
  await run('ip', ['link', 'del', `pgmbr${index}`]);
}

async function removeNetns(ns: string): Promise<void> {
  const pids = (await run('ip', ['netns', 'pids', ns])).stdout.split('\n').filter((x) => /^\d+$/.test(x));
  for (const pid of pids) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await run('ip', ['netns', 'del', ns]);
}

async function links(type?: string): Promise<{ ifname: string; ifalias?: string }[]> {
  const r = await run('ip', ['-j', 'link', 'show', ...(type ? ['type', type] : [])]);
  return r.code === 0 && r.stdout.trim() !== '' ? (JSON.parse(r.stdout) as { ifname: string; ifalias?: string }[]) : [];
}

async function labBridges(): Promise<{ index: number; lab: string | null; pid: number | null }[]> {
  const res: { index: number; lab: string | null; pid: number | null }[] = [];
  for (const l of await links('bridge')) {
    const m = /^pgmbr(\d+)$/.exec(l.ifname);
    if (!m) continue;
    const a = LAB_ALIAS.exec(l.ifalias ?? '');
    res.push({ index: Number(m[1]), lab: a ? a[1] : null, pid: a ? Number(a[2]) : null });
  }
  return res;
}

async function labNamespaces(): Promise<string[]> {
  const r = await run('ip', ['-j', 'netns', 'list']);
  const list = r.code === 0 && r.stdout.trim() !== '' ? (JSON.parse(r.stdout) as { name: string }[]) : [];
  return list.map((n) => n.name).filter((n) => /^pgm-[a-z0-9]+-[a-z0-9]+$/.test(n));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** `setpriv` drops to the PostgreSQL user inside the namespace (`ip netns exec` itself needs root). */
function asUser(user: RunAs | undefined): string[] {
  if (user?.uid === undefined || user.gid === undefined) return [];
  return ['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--'];
}

async function ip(args: readonly string[]): Promise<void> {
  check(`ip ${args.join(' ')}`)(await run('ip', args));
}

function check(what: string): (r: ExecResult) => void {
  return (r) => {
    if (r.code !== 0) throw new PgmError('daemon.failed', `${what} failed: ${r.stderr.trim() || `exit status ${r.code}`}.`, { hint: 'lab networking needs root, iproute2 and bridge/veth support in the kernel.' });
  };
}
