import net from 'node:net';
import type { ClusterConfig } from '../config/types.js';

/**
 * The auto endpoint's own pg_hba: it connects to the servers from its own
 * address, so it must apply the cluster's rules itself. A client may come
 * from `clients` or from an address pgmaestro administers from; the
 * superuser only from the latter (as the rendered pg_hba.conf says). Pure.
 */
export function admits(cfg: Pick<ClusterConfig, 'clients' | 'nodes' | 'managerAddresses'>, peer: string, _user: string, superuser: boolean): boolean {
  const admin = [...cfg.nodes.map((n) => n.admin), ...cfg.managerAddresses];
  if (admin.some((a) => sameAddress(a, peer))) return true;
  if (superuser) return false;
  return cfg.clients.some((c) => inCidr(peer, c));
}

function normalize(a: string): string {
  return a.startsWith('::ffff:') && net.isIPv4(a.slice(7)) ? a.slice(7) : a;
}

function sameAddress(a: string, b: string): boolean {
  return normalize(a) === normalize(b);
}

/** Whether `addr` lies in `cidr` (IPv4 or IPv6). */
export function inCidr(addr: string, cidr: string): boolean {
  const [base, bitsText] = cidr.split('/');
  const a = toBits(normalize(addr));
  const b = toBits(normalize(base));
  if (!a || !b || a.length !== b.length) return false;
  const bits = bitsText === undefined ? a.length : Number(bitsText);
  return a.slice(0, bits) === b.slice(0, bits);
}

function toBits(addr: string): string | null {
  if (net.isIPv4(addr)) return addr.split('.').map((o) => Number(o).toString(2).padStart(8, '0')).join('');
  if (!net.isIPv6(addr)) return null;
  const [head, tail = ''] = addr.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = addr.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  return groups.map((g) => parseInt(g || '0', 16).toString(2).padStart(16, '0')).join('');
}
