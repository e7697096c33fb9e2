import type { ClusterContext } from '../cluster/context.js';
import { requireSecrets } from '../cluster/context.js';
import { withLocks } from '../cluster/lock.js';
import type { HostConfig } from '../config/types.js';
import { NO_LEASE, type EtcdStateStore } from '../dcs/etcd.js';
import { LeasedKey } from '../dcs/lease.js';
import type { ClusterState } from '../dcs/store.js';
import { PgmError } from '../errors.js';
import type { PrimaryHooks } from '../ha/failover.js';
import { Monitor } from '../ha/monitor.js';
import { failoverCommand, rejoinCommand, switchoverCommand } from '../ha/operator.js';
import { adoptMemory, portableMemory, worthHandingOver, type PortableMemory } from '../ha/policy-memory.js';
import { restartOptions, rollingRestart } from '../ha/restart.js';

export interface ControllerDeps {
  readonly ctx: ClusterContext;
  readonly store: EtcdStateStore;
  readonly me: HostConfig;
  readonly ttlMs: number;
  readonly marginMs: number;
  readonly hooks: PrimaryHooks;
  /** What this agent heard from a primary's agent cut off from etcd (it vetoes promotions for a ttl). */
  failsafeSeen(): { from: string; ageMs: number } | null;
  event(sentence: string): void;
  log(line: string): void;
}

/** What the controller campaign looks at each cycle (read by the agent's tick). */
export interface ClusterView {
  readonly state: ClusterState | null;
  readonly paused: boolean;
  /** Hosts whose agents run (hold their session key), this one included. */
  readonly agents: readonly string[];
}

/**
 * The controller: every agent campaigns for the controller lease, and only
 * the holder runs the monitor (snapshot → decide → act), the operator's HA
 * commands and the promotions. It acts only while its lease holds with the
 * fencing margin to spare, and every state write it makes also requires the
 * lease (a transaction comparison), so a controller cut off from etcd stops
 * before another can take over, and a late write of a deposed one fails.
 *
 * The controller stays off the primary's host while another agent runs: the
 * failure that matters most, the primary's host dying or cut off, then never
 * takes the controller with it, so no second ttl is lost electing a new one.
 * While a failure is under way the monitor's memory is kept in etcd, so a
 * controller that takes over continues the clocks instead of restarting them.
 */
export class Controller {
  readonly monitor: Monitor;
  private readonly key: LeasedKey;
  private cycling = false;
  private savedMemory = false;
  /** What this controller last said about the agents and the etcd members (null: not looked yet). */
  private agentsSeen: ReadonlySet<string> | null = null;
  private membersDown: ReadonlySet<string> | null = null;
  private membersCheckedAt = 0;
  private lastView: ClusterView | null = null;
  /** Why to give up the lease once the cycle under way ends (null: keep it). */
  private handOver: { readonly primary: string; readonly why: string } | null = null;

  constructor(private readonly d: ControllerDeps) {
    this.key = new LeasedKey(d.store.client, d.store.keys.controller, d.ttlMs);
    d.store.setGuard(NO_LEASE); // this agent changes the state only as the controller
    this.monitor = new Monitor(d.ctx, d.hooks, (s) => d.event(s), { mayAct: () => this.mayAct(), failsafeSeen: () => d.failsafeSeen() });
  }

  get holding(): boolean {
    return this.key.holding;
  }

  /** Holds the lease with time to spare: acting is allowed. */
  mayAct(): boolean {
    return this.key.holding && Date.now() < this.key.validUntil - this.d.marginMs;
  }

  /** One round of the campaign: renew, take, hand over or give up the controller lease. */
  async campaign(v: ClusterView): Promise<void> {
    this.lastView = v;
    if (v.paused) {
      if (this.key.holding) await this.resign('the cluster is paused (pgmaestro down)');
      return;
    }
    const primaryHost = v.state ? this.d.ctx.cfg.nodes.find((n) => n.name === v.state!.primary)?.host ?? null : null;
    const elsewhere = v.agents.filter((h) => h !== this.d.me.name && h !== primaryHost);
    const onPrimaryHost = primaryHost === this.d.me.name;
    if (this.key.holding) {
      if (onPrimaryHost && elsewhere.length > 0 && !v.state?.pending) {
        const why = `it runs the primary ${v.state!.primary}, and the agent${elsewhere.length > 1 ? 's' : ''} of ${elsewhere.join(', ')} can control the cluster from outside its host`;
        if (!this.cycling) return this.resign(why);
        this.handOver = { primary: v.state!.primary, why }; // at the end of the cycle under way, if still so
      }
      if (!(await this.key.renew())) {
        this.d.store.setGuard(NO_LEASE);
        this.d.log('lost the controller lease');
      }
      return;
    }
    if (onPrimaryHost && elsewhere.length > 0) return; // leave it to a host that survives the primary's
    if (await this.key.acquire(this.d.me.name)) {
      this.d.store.setGuard(this.key.leaseId);
      this.agentsSeen = null;
      this.membersDown = null;
      const took = await this.takeOverMemory(v.state);
      this.d.event(`host ${this.d.me.name} is the controller${took ? ` (continuing the previous controller's observations: ${took})` : ''}`);
    }
  }

  private async resign(why: string): Promise<void> {
    this.d.store.setGuard(NO_LEASE);
    await this.key.release().catch(() => this.key.drop());
    this.d.event(`host ${this.d.me.name} is no longer the controller: ${why}`);
  }

  /** A monitor cycle, when allowed; keeps its memory in etcd while a failure is under way. */
  async cycle(): Promise<void> {
    if (!this.mayAct() || this.cycling) return;
    if (!(await this.d.store.read(this.d.ctx.group))) return; // not provisioned yet: up writes the state last
    this.cycling = true;
    try {
      await this.monitor.cycle();
      await this.saveMemory();
      await this.watchPeers();
    } finally {
      this.cycling = false;
    }
    const h = this.handOver;
    this.handOver = null;
    const st = h ? await this.d.store.read(this.d.ctx.group) : null;
    if (h && st && !st.pending && st.primary === h.primary) await this.resign(h.why);
  }

  /**
   * Says when a host's agent stops or starts holding its session in etcd,
   * and when an etcd member stops or starts answering (checked every few
   * cycles): faults that decide nothing yet, but that an operator reading the
   * event log must see.
   */
  private async watchPeers(): Promise<void> {
    const v = this.lastView;
    if (v) {
      const now = new Set(v.agents);
      if (this.agentsSeen) {
        for (const h of this.d.ctx.cfg.hosts.map((x) => x.name)) {
          if (this.agentsSeen.has(h) && !now.has(h)) this.d.event(`the agent of host ${h} is gone: its session in etcd expired (dead, stopped, or cut off from etcd)`);
          if (!this.agentsSeen.has(h) && now.has(h)) this.d.event(`the agent of host ${h} runs again`);
        }
      }
      this.agentsSeen = now;
    }
    if (Date.now() - this.membersCheckedAt < Math.max(2000, 4 * this.d.ctx.cfg.ha.loopWaitMs)) return;
    this.membersCheckedAt = Date.now();
    const health = await this.d.store.client.endpointHealth();
    const down = new Set(health.filter((h) => !h.healthy).map((h) => h.endpoint));
    const count = `${health.length - down.size} of ${health.length} answer`;
    if (!this.membersDown) {
      // a new controller's first look: what is down already is news to the log too
      for (const e of down) this.d.event(`etcd member ${e} does not answer (${count})`);
    } else {
      for (const h of health) {
        if (down.has(h.endpoint) && !this.membersDown.has(h.endpoint)) this.d.event(`etcd member ${h.endpoint} does not answer (${count})`);
        if (!down.has(h.endpoint) && this.membersDown.has(h.endpoint)) this.d.event(`etcd member ${h.endpoint} answers again (${count})`);
      }
    }
    this.membersDown = down;
  }

  private async saveMemory(): Promise<void> {
    const m = this.monitor.memory;
    const k = this.d.store.keys.group(this.d.ctx.group).monitor;
    const guard = { key: this.d.store.keys.controller, target: 'Lease' as const, lease: this.key.leaseId ?? '0' };
    if (worthHandingOver(m)) {
      await this.d.store.client.txn([guard], [{ put: k, value: JSON.stringify(portableMemory(m, Date.now())) }]);
      this.savedMemory = true;
    } else if (this.savedMemory) {
      await this.d.store.client.txn([guard], [{ del: k }]);
      this.savedMemory = false;
    }
  }

  /** On taking the lease: the previous controller's memory of a failure under way, if it is about the current primary. */
  private async takeOverMemory(st: ClusterState | null): Promise<string | null> {
    const kv = await this.d.store.client.get(this.d.store.keys.group(this.d.ctx.group).monitor).catch(() => null);
    if (!kv || !st) return null;
    const p = JSON.parse(kv.value) as PortableMemory;
    if (!this.monitor.adopt(adoptMemory(p, Date.now()), st.primary)) return null;
    this.savedMemory = true;
    const failing = Object.entries(p.nodes).filter(([, n]) => n.failingForMs !== null).map(([name, n]) => `${name} failing for ${(n.failingForMs! / 1000).toFixed(1)} s`);
    return failing.length > 0 ? failing.join(', ') : 'a restart in place awaited';
  }

  /** An operator's HA command, run here only while this agent is the controller: the cluster lock, then the monitor paused. */
  async command(verb: string, body: Record<string, unknown>): Promise<string> {
    if (!this.mayAct()) {
      const holder = (await this.d.store.client.get(this.d.store.keys.controller))?.value ?? 'nobody';
      throw new PgmError('agent.refused', `host ${this.d.me.name} is not the controller (${holder} is).`, { hint: 'ask the controller; pgmaestro does that by itself, retry.' });
    }
    const { ctx, hooks } = this.d;
    const event = (s: string) => this.d.event(s);
    const run = (): Promise<string> => {
      switch (verb) {
        case 'switchover':
          return switchoverCommand(ctx, String(body.to), hooks, event);
        case 'failover':
          return failoverCommand(ctx, typeof body.to === 'string' ? body.to : null, hooks, event);
        case 'rejoin':
          return rejoinCommand(ctx, String(body.node), event);
        case 'restart':
          return rollingRestart(ctx, requireSecrets(ctx), restartOptions(body), hooks, event);
        default:
          throw new PgmError('usage', `the agent has no command ${verb}.`, { hint: 'run the same version of pgmaestro on every host.' });
      }
    };
    const wait = typeof body.wait_ms === 'number' ? (body.wait_ms < 0 ? Infinity : body.wait_ms) : null;
    const command = verb === 'switchover' ? `pgmaestro switchover --to ${String(body.to)}` : verb === 'rejoin' ? `pgmaestro rejoin ${String(body.node)}` : `pgmaestro ${verb}`;
    const sentence = await withLocks(ctx.locks, ['cluster'], command, wait, () => this.monitor.exclusive(run));
    this.d.event(sentence);
    return sentence;
  }

  async stop(): Promise<void> {
    if (this.key.holding) await this.resign('its agent stops');
  }
}
