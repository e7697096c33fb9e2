import { findNode } from '../cluster/context.js';
import { StateFollower } from './follow.js';
import { formatAddress } from './processes.js';
import { nodeTarget, type EndpointService, type ServiceDeps } from './service.js';
import { Forwarders } from './forwarders.js';

/**
 * The rw endpoint: TCP to the primary the cluster state names. While there is
 * none (fenced, promotion pending) new connections wait up to `endpoints.hold`;
 * when it changes, every connection to the previous one is dropped first.
 */
export class RwService implements EndpointService {
  private readonly endpoint: Forwarders;
  private readonly follower: StateFollower;
  private target: string | null = null;

  constructor(private readonly deps: ServiceDeps) {
    const { ctx, address } = deps;
    this.endpoint = new Forwarders({ host: address.host, port: address.port, holdMs: ctx.cfg.endpoints.holdMs, log: deps.log, mode: 'target' });
    this.follower = new StateFollower(ctx, async (f) => {
      const target = f.primary ? nodeTarget(findNode(ctx.cfg, f.primary)) : null;
      if ((target?.name ?? null) === this.target) return; // only the fenced list changed
      this.target = target?.name ?? null;
      deps.event(`rw: ${await this.endpoint.setTarget(target, f.reason)}`);
    });
  }

  async start(): Promise<void> {
    await this.endpoint.listen();
    await this.follower.start();
  }

  async refresh(): Promise<string> {
    const f = await this.follower.refresh();
    return f.primary ? `endpoint rw ${formatAddress(this.deps.address)} forwards to ${f.primary}` : `endpoint rw ${formatAddress(this.deps.address)} holds new connections: ${f.reason}`;
  }

  stats() {
    const s = this.endpoint.stats;
    return {
      address: formatAddress(this.deps.address),
      primary: this.target,
      connections: { current: s.active + s.connecting + s.held, total: s.accepted },
      bytes: { from_clients: s.bytesFromClients, to_clients: s.bytesToClients },
      routes: { primary: s.forwarded, held: s.held, refused: s.holdExpired },
      nodes: s.perTarget,
    };
  }

  async close(): Promise<void> {
    this.follower.stop();
    await this.endpoint.close();
  }
}
