import { requireSecrets } from '../cluster/context.js';
import { eligibleReplicas, type Eligibility, type NodeView } from './balance.js';
import { StateFollower, type Followed } from './follow.js';
import { Prober } from './probes.js';
import { formatAddress } from './processes.js';
import { nodeTarget, type EndpointService, type ServiceDeps } from './service.js';
import { Forwarders } from './forwarders.js';

/**
 * The ro endpoint: TCP, each new connection to the eligible replica with the
 * fewest connections (its own probes say which stream within max_lag). A
 * replica that stops being eligible gets no new connections; its open ones
 * are closed after `endpoints.ro_drain` if it has not recovered by then, and
 * at once when it is fenced (a fenced node may be a diverged old primary).
 * With no eligible replica: the primary, or a refusal (`ro_fallback`).
 */
export class RoService implements EndpointService {
  private readonly endpoint: Forwarders;
  private readonly follower: StateFollower;
  private readonly prober: Prober;
  private followedNow: Followed = { primary: null, fenced: [], reason: 'not started' };
  private views: NodeView[] = [];
  private eligibility = new Map<string, Eligibility>();
  /** When each currently ineligible node stopped being eligible. */
  private readonly ineligibleSince = new Map<string, number>();

  constructor(private readonly deps: ServiceDeps) {
    const { ctx, address } = deps;
    this.endpoint = new Forwarders({ host: address.host, port: address.port, holdMs: ctx.cfg.endpoints.holdMs, log: deps.log, mode: 'pick' });
    this.follower = new StateFollower(ctx, (f) => {
      this.followedNow = f;
      this.reassess();
    });
    const secrets = requireSecrets(ctx);
    this.prober = new Prober(ctx.cfg.nodes, {
      user: ctx.cfg.superuser,
      password: secrets.superuserPassword,
      onRound: (views) => {
        this.views = views;
        this.reassess();
      },
    });
  }

  async start(): Promise<void> {
    await this.follower.start();
    await this.prober.start();
    await this.endpoint.listen();
  }

  async refresh(): Promise<string> {
    await this.follower.refresh();
    const eligible = this.eligibleNames();
    return `endpoint ro ${formatAddress(this.deps.address)}: ${eligible.length > 0 ? `replicas ${eligible.join(', ')}` : `no eligible replica (fallback ${this.deps.ctx.cfg.endpoints.roFallback})`}`;
  }

  stats() {
    const s = this.endpoint.stats;
    const replicas: Record<string, string> = {};
    for (const [name, e] of this.eligibility) replicas[name] = e.eligible ? 'eligible' : e.reason;
    return {
      address: formatAddress(this.deps.address),
      primary: this.followedNow.primary,
      connections: { current: s.active + s.connecting + s.held, total: s.accepted },
      bytes: { from_clients: s.bytesFromClients, to_clients: s.bytesToClients },
      routes: { ...s.routes, held: s.held, refused: s.routes.refused + s.holdExpired },
      nodes: s.perTarget,
      replicas,
    };
  }

  async close(): Promise<void> {
    this.follower.stop();
    await this.prober.stop();
    await this.endpoint.close();
  }

  private eligibleNames(): string[] {
    return [...this.eligibility].filter(([, e]) => e.eligible).map(([n]) => n);
  }

  /** After a probe round or a state change: who may take reads, what to drain, whom to release. */
  private reassess(): void {
    if (this.views.length === 0) return;
    const { cfg } = this.deps.ctx;
    const { primary, fenced } = this.followedNow;
    const next = eligibleReplicas(this.views, primary, fenced, cfg.endpoints);
    const now = Date.now();
    for (const [name, e] of next) {
      const before = this.eligibility.get(name);
      if (e.eligible) {
        this.ineligibleSince.delete(name);
        if (before && !before.eligible) this.deps.event(`ro: ${name} takes new connections again`);
        continue;
      }
      if (!this.ineligibleSince.has(name)) {
        this.ineligibleSince.set(name, now);
        if (!before || before.eligible) this.deps.event(`ro: ${name} gets no new connections: ${e.reason}`);
      }
      // The primary keeps the connections it took as the fallback, unless ro must never reach it.
      if (name === primary && cfg.endpoints.roFallback === 'primary') continue;
      const drainDue = e.fenced || now - this.ineligibleSince.get(name)! >= cfg.endpoints.roDrainMs;
      if (drainDue && this.endpoint.connectionsTo(name) > 0) {
        const since = ((now - this.ineligibleSince.get(name)!) / 1000).toFixed(1);
        void this.endpoint.dropTarget(name).then((dropped) => {
          if (dropped > 0) this.deps.event(`ro: closed ${dropped} connection${dropped === 1 ? '' : 's'} to ${name}: ${e.reason}${e.fenced ? '' : ` for ${since} s`}`);
        });
      }
    }
    this.eligibility = next;
    // every thread chooses from the new list (held connections are offered again)
    const targets = Object.fromEntries(cfg.nodes.map((n) => [n.name, nodeTarget(n)]));
    void this.endpoint.setPick({ eligible: this.eligibleNames(), primary, fallback: cfg.endpoints.roFallback, targets });
  }
}
