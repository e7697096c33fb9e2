import type { ClusterContext } from '../cluster/context.js';
import { addVip, removeVip } from './vip.js';

/**
 * Puts the cluster's virtual IP on the primary's interface and nowhere else:
 * removed from every other node first (so it is never on two hosts), then
 * added with a gratuitous ARP. Nodes without a `vip_interface` are skipped.
 * With `primary` null the address is only removed. Returns what it did.
 */
export async function moveVip(ctx: ClusterContext, primary: string | null): Promise<string[]> {
  const address = ctx.cfg.ha.vip;
  if (!address) return [];
  const out: string[] = [];
  const netns = (name: string) => ctx.lab?.hosts.find((h) => h.name === name)?.netns;
  for (const n of ctx.cfg.nodes) {
    if (n.name === primary || !n.vipInterface) continue;
    out.push(await removeVip({ address, iface: n.vipInterface, netns: netns(n.name) }).catch((err: Error) => `VIP: ${err.message}`));
  }
  const p = ctx.cfg.nodes.find((n) => n.name === primary);
  if (p?.vipInterface) out.push(await addVip({ address, iface: p.vipInterface, netns: netns(p.name) }).catch((err: Error) => `VIP: ${err.message}`));
  return out;
}
