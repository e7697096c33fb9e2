import fs from 'node:fs';
import path from 'node:path';
import type { ClusterContext } from '../cluster/context.js';
import type { HostConfig, NodeConfig } from '../config/types.js';
import type { EtcdStateStore } from '../dcs/etcd.js';
import { LeasedKey } from '../dcs/lease.js';
import type { ClusterState } from '../dcs/store.js';
import type { NodeObservation } from '../ha/observations.js';
import type { TlsIdentity } from './certs.js';
import { armGuard, ensureGuard, monoNow, type GuardFiles } from './guard.js';
import type { HostVip } from './host-vip.js';
import { agentVerb } from './http.js';

export interface PrimaryLeaseDeps {
  readonly ctx: ClusterContext;
  readonly store: EtcdStateStore;
  readonly id: TlsIdentity;
  readonly me: HostConfig;
  /** This host's nodes. */
  readonly nodes: readonly NodeConfig[];
  readonly ttlMs: number;
  readonly loopMs: number;
  /** How long before the lease can expire the primary must refuse writes: max(loop_wait, 1 s). */
  readonly marginMs: number;
  readonly guard: GuardFiles;
  /** How to start this host's guard (`pgmaestro agent guard …`). */
  readonly guardArgv: readonly string[];
  observation(node: string): NodeObservation | undefined;
  event(sentence: string): void;
  log(line: string): void;
  /** Stops the endpoint of this host from forwarding to the local primary. */
  endpointOff(reason: string): void;
  /** The cluster's VIP on this host: carried exactly while the lease is. */
  readonly vip: HostVip;
}

/** What the primary must keep true: `node` refuses writes from `until` (ms, Date.now terms) on, unless a renewal moves it. */
interface Armed {
  readonly node: string;
  readonly until: number;
}

/**
 * The primary lease of this host's node, and the promise that comes with it:
 * while a node of this host is the group's primary (and runs as one), its
 * agent holds the group's primary key under a lease it renews every cycle;
 * if it cannot, the node refuses writes before the lease can expire, so
 * nobody else is ever promoted while it might still commit.
 *
 * Three things keep that promise, any one of them enough:
 * - the agent's own fence timer, at the deadline minus the fencing margin;
 * - the host's guard (guard.ts), armed with the same deadline (minus half the
 *   margin), for an agent that is dead or frozen;
 * - a renewal that etcd answers with "expired" and no re-acquisition: fence at once.
 * Cut off from etcd but able to reach every other agent directly, the primary
 * keeps serving (failsafe) for a ttl past its last such round: nobody can be
 * promoted without etcd, and the agents it reached veto a promotion for a ttl.
 *
 * An agent that restarts adopts its lease (its id is kept in state/), so a
 * restart within the ttl is seamless; a graceful stop keeps the lease and the
 * guard armed rather than releasing a primary nobody then watches.
 */
export class PrimaryLease {
  private readonly key: LeasedKey;
  private readonly leaseFile: string;
  private armed: Armed | null = null;
  private failsafeUntil = 0;
  private saidFailsafe = false;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(private readonly d: PrimaryLeaseDeps) {
    this.key = new LeasedKey(d.store.client, d.store.keys.group(d.ctx.group).primary, d.ttlMs);
    this.leaseFile = path.join(d.ctx.paths.stateDir, `agent-${d.me.name}.lease.json`);
  }

  /** The node this host holds the primary lease for, or null. */
  get node(): string | null {
    return this.key.holding ? (this.armed?.node ?? null) : null;
  }

  /** Whether `node` may say it is the primary (health checks): the lease holds, or the failsafe does. */
  authority(node: string): boolean {
    return this.armed?.node === node && Date.now() < this.deadline();
  }

  /** After a restart: the lease this host held before, if etcd still has it. */
  async adopt(): Promise<void> {
    let rec: { lease: string; node: string } | null = null;
    try {
      rec = JSON.parse(fs.readFileSync(this.leaseFile, 'utf8')) as { lease: string; node: string };
    } catch {
      return;
    }
    if (!this.d.nodes.some((n) => n.name === rec!.node)) return;
    if (await this.key.adopt(rec.lease)) {
      this.arm(rec.node);
      this.d.event(`${rec.node} keeps its primary lease across the restart of its agent`);
    }
  }

  /** One cycle with etcd answering: hold, renew, or give up the lease as the state says. */
  async duty(st: ClusterState | null, revision: string | null): Promise<void> {
    const ours = st ? this.d.nodes.find((n) => n.name === st.primary) : undefined;
    const fit = !!st && !!ours && !st.pending && !st.fenced.includes(ours.name);
    if (this.armed && (!fit || ours!.name !== this.armed.node)) return this.stepDown(st);
    if (!fit) return;
    const node = ours!;
    if (this.key.holding && (await this.key.renew())) return this.arm(node.name);
    // not held (or it expired): take it, if the node runs as a primary and the state is still the one read
    const o = this.d.observation(node.name);
    const runs = !!o && o.inRecovery === false && (o.sqlOk || o.probeMs !== null);
    const gk = this.d.store.keys.group(this.d.ctx.group);
    const had = this.armed !== null;
    if (runs && revision !== null && (await this.key.acquire(node.name, [{ key: gk.state, target: 'Mod', revision }]))) {
      this.arm(node.name);
      fs.writeFileSync(this.leaseFile, JSON.stringify({ lease: this.key.leaseId, node: node.name }) + '\n', { mode: 0o600 });
      this.d.event(`${node.name} ${had ? 'took its primary lease again after it had expired' : `holds the primary lease (ttl ${this.d.ttlMs / 1000} s)`}`);
    } else if (had) {
      // etcd said the lease expired and it cannot be taken again: another may be promoted now
      await this.fenceNow(`its primary lease expired and could not be taken again`);
    }
  }

  /** etcd does not answer: while armed, reach every other agent directly (failsafe) to keep serving. */
  async offline(): Promise<void> {
    if (!this.armed) return;
    const others = this.d.ctx.cfg.hosts.filter((h) => h.name !== this.d.me.name);
    const sent = Date.now();
    const results = await Promise.allSettled(others.map((h) => agentVerb(this.d.id, h, 'failsafe', { from: this.armed!.node }, Math.min(Math.max(this.d.loopMs, 1000), this.d.ttlMs / 4))));
    const missed = others.filter((_, i) => results[i].status === 'rejected').map((h) => h.name);
    if (!this.armed) return;
    if (missed.length === 0) {
      this.failsafeUntil = sent + this.d.ttlMs;
      if (!this.saidFailsafe) this.d.event(`failsafe: etcd does not answer, but ${this.armed.node}'s agent reached every other agent, so it keeps serving`);
      this.saidFailsafe = true;
      this.arm(this.armed.node);
    } else if (this.saidFailsafe) {
      this.saidFailsafe = false;
      this.d.event(`failsafe ended: etcd does not answer and ${missed.join(', ')} cannot be reached`);
    }
  }

  /** etcd answers again. */
  online(): void {
    this.saidFailsafe = false;
  }

  /** A fence of `node` was carried out here (asked by the controller): the promise is kept, the lease can go. */
  async fenced(node: string, reason: string): Promise<void> {
    if (this.armed?.node !== node) return;
    this.disarm();
    this.d.endpointOff(`${node} was fenced: ${reason}`);
    await this.key.release().catch(() => this.key.drop());
  }

  /**
   * The agent stops. A primary that still runs keeps its lease and its armed
   * guard (the next agent adopts them; if none comes, the guard fences it
   * when the lease runs out); otherwise the lease is released.
   */
  async stop(): Promise<'kept' | 'released' | 'none'> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (!this.armed) return 'none';
    const n = this.d.nodes.find((x) => x.name === this.armed!.node);
    if (n && (await this.d.ctx.control(n).inspect()).pid !== null) return 'kept';
    this.disarm();
    await this.key.release().catch(() => this.key.drop());
    return 'released';
  }

  // ---- the promise ------------------------------------------------------------

  private deadline(): number {
    return Math.max(this.key.holding ? this.key.validUntil : 0, this.failsafeUntil, this.armed?.until ?? 0);
  }

  /** `node` may write until the lease (or the failsafe) can run out: the timer and the guard fence it before. */
  private arm(node: string): void {
    const until = Math.max(this.key.holding ? this.key.validUntil : 0, this.failsafeUntil);
    this.armed = { node, until };
    if (this.timer) clearTimeout(this.timer);
    if (this.stopped) return;
    const fenceAt = until - this.d.marginMs;
    this.timer = setTimeout(() => void this.onDeadline(), Math.max(0, fenceAt - Date.now()));
    const n = this.d.nodes.find((x) => x.name === node)!;
    if (this.key.holding) void this.d.vip.hold(node);
    try {
      ensureGuard(this.d.guard, [...this.d.guardArgv, '--agent-pid', String(process.pid)]);
      armGuard(this.d.guard, { node, dataDir: n.dataDir, deadline: monoNow() + (until - this.d.marginMs / 2 - Date.now()), agentPid: process.pid, vip: this.d.vip.spec(node) });
    } catch (err) {
      this.d.log(`guard: cannot arm it (${(err as Error).message}); the agent's own timer still fences ${node}`);
    }
  }

  private disarm(): void {
    void this.d.vip.release();
    this.armed = null;
    this.failsafeUntil = 0;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    armGuard(this.d.guard, null);
    fs.rmSync(this.leaseFile, { force: true });
  }

  private async onDeadline(): Promise<void> {
    this.timer = null;
    if (!this.armed) return;
    if (Date.now() < this.armed.until - this.d.marginMs) return this.arm(this.armed.node);
    const since = Date.now() - (this.armed.until - this.d.ttlMs);
    await this.fenceNow(`it could not renew its primary lease for ${(since / 1000).toFixed(1)} s and did not reach every other agent`);
  }

  /** Fences the armed node now and lets the lease go. */
  private async fenceNow(why: string): Promise<void> {
    const a = this.armed;
    if (!a) return;
    this.d.endpointOff(`${a.node} lost its primary lease`);
    const n = this.d.nodes.find((x) => x.name === a.node)!;
    const r = await this.d.ctx.control(n).fence('primary lease about to expire');
    this.disarm();
    this.key.drop();
    this.d.event(`${a.node} fenced itself (${r}): ${why}, so it refuses writes before the lease can expire`);
  }

  /** The state moved on (a failover, a switchover, a fence): make sure ours refuses writes, then let go. */
  private async stepDown(st: ClusterState | null): Promise<void> {
    const a = this.armed!;
    const n = this.d.nodes.find((x) => x.name === a.node)!;
    if (this.d.observation(a.node)?.inRecovery !== true) await this.d.ctx.control(n).fence('the state names another primary');
    this.disarm();
    await this.key.release().catch(() => this.key.drop());
    this.d.event(`${a.node} gave up its primary lease: ${st?.pending ? `a ${st.pending.kind} to ${st.pending.to} is in progress` : `the state names ${st?.primary ?? 'no'} primary`}`);
  }
}
