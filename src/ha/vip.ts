import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { PgmError } from '../errors.js';
import { run, type ExecResult } from '../postgres/exec.js';
import { isExecutable } from '../util/fsx.js';

/**
 * The optional virtual IP: the address clients use, carried by the primary's
 * host. Moving it is `removeVip` on the old host and `addVip` on the new one;
 * the gratuitous ARP that `addVip` sends makes the neighbours (switch, clients
 * on the subnet) forget the old host's MAC at once instead of after their ARP
 * cache expires.
 *
 * Guarantees: both calls are idempotent (adding a present address or removing
 * an absent one is fine) and return one sentence saying what they did; no
 * shell is involved; with `netns`, everything runs inside that namespace.
 * `addVip` checks for `arping` before touching anything, so a missing tool
 * changes nothing.
 *
 * Give the VIP the prefix of its subnet (10.0.0.100/24) or /32. Either way it
 * must be added after the interface's own address: the kernel deletes the
 * secondaries of a primary address removed from a subnet (unless
 * net.ipv4.conf.IFACE.promote_secondaries is 1), so a VIP that became an
 * interface's primary address would take the host's own address with it.
 */

export interface VipOptions {
  /** IPv4 address with an optional prefix, e.g. 10.99.0.100/24 (default /32). */
  readonly address: string;
  readonly iface: string;
  /** Run inside this network namespace (lab hosts). */
  readonly netns?: string;
}

export interface VipHost {
  readonly name: string;
  readonly netns?: string;
}

export async function addVip(opts: VipOptions): Promise<string> {
  const vip = parseVip(opts.address);
  const arping = await findArping();
  // Add the address unless it is there already.
  const present = await findOnIface(opts, vip.ip);
  if (!present) {
    const r = await ipIn(opts.netns, ['addr', 'add', `${vip.ip}/${vip.prefix}`, 'dev', opts.iface]);
    if (r.code !== 0 && !/File exists/i.test(r.stderr)) throw failed(`cannot add VIP ${opts.address} to ${where(opts)}`, r);
  }
  // Announce it: a gratuitous ARP from the VIP to the whole subnet.
  const args = arping.flavour === 'iputils' ? ['-q', '-U', '-c', '2', '-I', opts.iface, vip.ip] : ['-q', '-U', '-c', '2', '-W', '0.2', '-i', opts.iface, '-S', vip.ip, vip.ip];
  const r = await runIn(opts.netns, arping.path, args);
  // Thomas Habets' arping exits 1 when nobody answered, which is the normal outcome of an unsolicited ARP.
  const ok = r.code === 0 || (arping.flavour === 'habets' && r.code === 1 && r.stderr.trim() === '');
  if (!ok) {
    throw failed(`VIP ${opts.address} is on ${where(opts)} but announcing it with arping failed`, r, {
      hint: 'check the interface is up; neighbours will learn the new address when their ARP cache expires.',
    });
  }
  const what = present ? `VIP ${vip.ip}/${present.prefix} was already on ${where(opts)}` : `added VIP ${vip.ip}/${vip.prefix} to ${where(opts)}`;
  return `${what}; announced it with gratuitous ARP`;
}

export async function removeVip(opts: VipOptions): Promise<string> {
  const vip = parseVip(opts.address);
  const present = await findOnIface(opts, vip.ip);
  if (!present) return `VIP ${vip.ip} was not on ${where(opts)}; nothing to remove`;
  // Delete with the prefix it actually has: the kernel matches address and prefix.
  const r = await ipIn(opts.netns, ['addr', 'del', `${vip.ip}/${present.prefix}`, 'dev', opts.iface]);
  if (r.code !== 0 && !/Cannot assign requested address/i.test(r.stderr)) throw failed(`cannot remove VIP ${opts.address} from ${where(opts)}`, r);
  return `removed VIP ${vip.ip}/${present.prefix} from ${where(opts)}`;
}

/** The names of the hosts that carry the VIP right now, on any interface. */
export async function vipHolders(opts: { address: string; hosts: readonly VipHost[] }): Promise<string[]> {
  const vip = parseVip(opts.address);
  const out: string[] = [];
  for (const h of opts.hosts) {
    const r = await ipIn(h.netns, ['-j', '-4', 'addr', 'show']);
    if (r.code !== 0) throw failed(`cannot list the addresses of ${h.name}`, r);
    if (addresses(r.stdout).some((a) => a.ip === vip.ip)) out.push(h.name);
  }
  return out;
}

function parseVip(address: string): { ip: string; prefix: number } {
  const [ip, p, extra] = address.split('/');
  const prefix = p === undefined ? 32 : Number(p);
  if (extra !== undefined || !net.isIPv4(ip) || !Number.isInteger(prefix) || prefix < 0 || prefix > 32 || (p !== undefined && !/^\d+$/.test(p))) {
    throw new PgmError('config.invalid', `'${address}' is not a usable virtual IP.`, { hint: 'give an IPv4 address with an optional prefix, e.g. 10.0.0.100/24.' });
  }
  return { ip, prefix };
}

async function findOnIface(opts: VipOptions, ip: string): Promise<{ prefix: number } | null> {
  const r = await ipIn(opts.netns, ['-j', '-4', 'addr', 'show', 'dev', opts.iface]);
  if (r.code !== 0) {
    throw failed(`cannot read the addresses of ${where(opts)}`, r, { hint: `check that the interface ${opts.iface} exists${opts.netns ? ` in network namespace ${opts.netns}` : ''}.` });
  }
  return addresses(r.stdout).find((a) => a.ip === ip) ?? null;
}

function addresses(json: string): { ip: string; prefix: number }[] {
  if (json.trim() === '') return [];
  const links = JSON.parse(json) as { addr_info?: { family?: string; local?: string; prefixlen?: number }[] }[];
  return links.flatMap((l) => (l.addr_info ?? []).filter((a) => a.family === 'inet' && a.local).map((a) => ({ ip: a.local as string, prefix: a.prefixlen ?? 32 })));
}

/**
 * Two unrelated programs are called arping, with different flags: Debian's
 * `arping` package (Thomas Habets') and `iputils-arping`. Either will do.
 */
export async function findArping(dirs: readonly string[] = defaultSearchPath()): Promise<{ path: string; flavour: 'habets' | 'iputils' }> {
  const found = dirs.map((d) => path.join(d, 'arping')).find((p) => isExecutable(p));
  if (!found) {
    throw new PgmError('tool.missing', 'arping is not installed, so the new VIP holder cannot announce the address to its neighbours (gratuitous ARP).', {
      hint: 'install it: apt-get install arping (or iputils-arping).',
    });
  }
  const help = await run(found, ['-h']);
  return { path: found, flavour: /Habets/i.test(help.stdout + help.stderr) ? 'habets' : 'iputils' };
}

function defaultSearchPath(): string[] {
  return [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin', '/usr/bin', '/bin'].filter((d) => d !== '');
}


function ipIn(netns: string | undefined, args: readonly string[]): Promise<ExecResult> {
  return runIn(netns, 'ip', args);
}

async function runIn(netns: string | undefined, cmd: string, args: readonly string[]): Promise<ExecResult> {
  const [c, a] = netns ? ['ip', ['netns', 'exec', netns, cmd, ...args]] : [cmd, args];
  try {
    return await run(c, a, { timeoutMs: 10_000 });
  } catch (err) {
    throw new PgmError('tool.missing', `cannot run ${c}: ${(err as Error).message}.`, { hint: 'install iproute2.', cause: err });
  }
}

function where(opts: VipOptions): string {
  return opts.netns ? `${opts.iface} in network namespace ${opts.netns}` : opts.iface;
}

function failed(what: string, r: ExecResult, extra: { hint?: string } = {}): PgmError {
  const detail = (r.stderr || r.stdout).trim().split('\n').slice(-2).join(' ') || `exit status ${r.code}`;
  return new PgmError('daemon.failed', `${what}: ${detail}.`, { hint: extra.hint ?? 'VIP changes need root (CAP_NET_ADMIN) and iproute2.', data: { exit: r.code } });
}
