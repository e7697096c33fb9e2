import type { ClusterConfig, NodeConfig } from '../config/types.js';
import { addVip, removeVip } from '../ha/vip.js';

/**
 * The cluster's virtual IP as one host carries it (multi-host): the
 * primary's host adds it to its node's `vip_interface` once it holds the
 * primary lease and removes it before that lease can run out — in the same
 * step that fences the node, or, if its agent is gone, in the guard's. Every
 * other host keeps it off its interfaces. The agent runs on its host (in the
 * lab: inside the host's namespace), so no namespace is named here.
 * Operations run one at a time, in order, so a removal never overtakes the
 * addition it follows.
 */
export class HostVip {
  private chain: Promise<void> = Promise.resolve();
  private on: string | null = null;

  constructor(
    private readonly cfg: ClusterConfig,
    private readonly nodes: readonly NodeConfig[],
    private readonly log: (line: string) => void,
  ) {}

  /** The VIP and interface of `node`, when the cluster has a VIP and the node an interface for it. */
  spec(node: string): { address: string; iface: string } | null {
    const n = this.nodes.find((x) => x.name === node);
    return this.cfg.ha.vip && n?.vipInterface ? { address: this.cfg.ha.vip, iface: n.vipInterface } : null;
  }

  /** Carry the VIP for `node` (idempotent). */
  hold(node: string): Promise<void> {
    if (this.on === node) return this.chain;
    const s = this.spec(node);
    if (!s) return this.chain;
    this.on = node;
    return this.then(async () => this.log(await addVip(s)));
  }

  /** Make sure no interface of this host carries the VIP (idempotent). */
  release(): Promise<void> {
    const specs = this.nodes.map((n) => this.spec(n.name)).filter((s): s is { address: string; iface: string } => s !== null);
    this.on = null;
    if (specs.length === 0) return this.chain;
    return this.then(async () => {
      for (const s of specs) {
        const line = await removeVip(s);
        if (!/nothing to remove/.test(line)) this.log(line);
      }
    });
  }

  private then(fn: () => Promise<void>): Promise<void> {
    this.chain = this.chain.then(fn).catch((err: Error) => this.log(`VIP: ${err.message}`));
    return this.chain;
  }
}
