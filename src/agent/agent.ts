
import type https from 'node:https';
import { openCluster, findNode, requireSecrets, type ClusterContext } from '../cluster/context.js';
import { fenceMarginMs } from '../config/load.js';
import type { ClusterConfig, HostConfig, NodeConfig } from '../config/types.js';
import { EtcdStateStore } from '../dcs/etcd.js';
import { LeasedKey } from '../dcs/lease.js';
import type { ClusterState } from '../dcs/store.js';
import { PgmError, errorMessage } from '../errors.js';
import { Endpoint } from '../ha/endpoint.js';
import type { PrimaryHooks } from '../ha/failover.js';
import { Monitor } from '../ha/monitor.js';
import type { NodeObservation } from '../ha/observations.js';
import { failoverCommand, rejoinCommand, switchoverCommand } from '../ha/operator.js';
import { observe } from '../ha/probe.js';
import { restartOptions, rollingRestart } from '../ha/restart.js';
import { lsnDiff } from '../postgres/lsn.js';
import { createAgentServer } from './api.js';
import { loadIdentity, type TlsIdentity } from './certs.js';
import { checkConfig } from './config-check.js';
import { agentVerb } from './http.js';

/**
 * `pgmaestro agent --host NAME`: controls the nodes of its host, and
 *  - publishes what it sees of them (member keys, session lease);
 *  - as the primary's host: holds the group's primary lease while its
 *    PostgreSQL is the group's primary, and fences it before the lease can
 *    expire when it cannot renew it — unless it reaches every other agent
 *    directly (failsafe) — or when the state says another node is primary;
 *  - campaigns for the controller lease; while it holds it (with time to
 *    spare), runs the monitor: decide() over a snapshot, acting through the
 *    node controls of every host;
 *  - serves the read-write endpoint for its host, following the state, and
 *    Patroni-compatible health checks on its HTTPS port.
 */
export async function runAgent(loaded: ClusterConfig, hostName: string): Promise<void> {
  if (!loaded.dcs) {
    throw new PgmError('config.invalid', `${loaded.file} has no dcs section, and an agent keeps its state and leases in etcd.`, {
      hint: 'add dcs and hosts (see the README, "Several hosts"), or use `pgmaestro up` to run one daemon on this machine.',
    });
  }
  if (!loaded.hosts.some((h) => h.name === hostName)) {
    throw new PgmError('config.invalid', `there is no host '${hostName}' in ${loaded.file}.`, { hint: `start the agent with --host set to one of: ${loaded.hosts.map((h) => h.name).join(', ')}.` });
  }
  const ctx = await openCluster(loaded, undefined, { host: hostName });
  const id = loadIdentity(ctx.cfg, hostName);
  const agent = new Agent(ctx, id);
  await agent.run();
}

const log = (line: string) => process.stdout.write(`${new Date().toISOString()} ${line}\n`);

class Agent {
  private readonly me: HostConfig;
  private readonly store: EtcdStateStore;
  /** Reads of the agent's own loop go through a store of their own, so they never move the controller's revision check. */
  private readonly reader: EtcdStateStore;
  private readonly L: number;
  private readonly T: number;
  private readonly margin: number;
  private readonly session: LeasedKey;
  private readonly primaryKey: LeasedKey;
  private readonly controllerKey: LeasedKey;
  private readonly nodes: readonly NodeConfig[];
  private readonly observations = new Map<string, NodeObservation>();
  private endpoint: Endpoint | null = null;
  private monitor: Monitor;
  private server: https.Server | null = null;
  private stopping = false;
  private etcdUp: boolean | null = null;
  private lastState: ClusterState | null = null;
  private lastHolder: string | null = null;
  private primaryLsn: bigint | null = null;
  private failsafeUntil = 0;
  private failsafeFrom: { from: string; at: number } | null = null;
  private fenceTimer: NodeJS.Timeout | null = null;
  private pendingEvents: { sentence: string; at: Date }[] = [];
  private saidFailsafe = false;
  private cycling = false;

  constructor(
    private readonly ctx: ClusterContext,
    private readonly id: TlsIdentity,
  ) {
    const cfg = ctx.cfg;
    this.me = cfg.hosts.find((h) => h.name === id.host)!;
    this.store = ctx.store as EtcdStateStore;
    this.reader = new EtcdStateStore(this.store.client, cfg.cluster, id.host);
    this.L = cfg.ha.loopWaitMs;
    this.T = cfg.dcs!.etcd.ttlMs;
    this.margin = fenceMarginMs(cfg);
    const k = this.store.keys;
    this.session = new LeasedKey(this.store.client, k.agent(id.host), this.T);
    this.primaryKey = new LeasedKey(this.store.client, k.group(ctx.group).primary, this.T);
    this.controllerKey = new LeasedKey(this.store.client, k.controller, this.T);
    this.nodes = cfg.nodes.filter((n) => n.host === id.host);
    this.monitor = new Monitor(ctx, this.hooks(), (s) => this.event(s), () => this.mayAct());
  }

  async run(): Promise<void> {
    // 1. the API: node control for the controller, health checks for load balancers
    this.server = createAgentServer(this.ctx, this.id, {
      health: (node) => this.health(node),
      failsafe: (from) => (this.failsafeFrom = { from, at: Date.now() }),
      failsafeSeen: () => (this.failsafeFrom ? { from: this.failsafeFrom.from, ageMs: Date.now() - this.failsafeFrom.at } : null),
      checkPromotion: (node) => this.checkPromotion(node),
      command: (verb, body) => this.command(verb, body),
      fenced: (node, reason) => void this.afterFence(node, reason),
    }, log);
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', (err: NodeJS.ErrnoException) =>
        reject(new PgmError('port.in_use', `the agent cannot listen on ${this.me.agent.host}:${this.me.agent.port}: ${err.code === 'EADDRINUSE' ? 'the port is in use' : err.message}.`, { hint: `stop what uses it, or change hosts[].agent of ${this.me.name}.` })),
      );
      this.server!.listen(this.me.agent.port, this.me.agent.host, () => resolve());
    });

    // 2. etcd: wait until it answers (saying so once), then agree on the configuration
    for (let said = false; ; ) {
      try {
        await checkConfig(this.store, this.ctx.cfg, this.me.name);
        break;
      } catch (err) {
        if (!(err instanceof PgmError) || err.code !== 'dcs.unavailable') throw err;
        if (!said) log(`${err.render()} Retrying every ${this.L / 1000} s.`);
        said = true;
        await sleep(this.L);
      }
    }
    log(`agent of host ${this.me.name} started (pid ${process.pid}) on ${this.me.agent.host}:${this.me.agent.port}; nodes ${this.nodes.map((n) => n.name).join(', ') || 'none'}`);

    // 3. the endpoint of this host
    const local = this.nodes[0];
    if (local) {
      this.endpoint = new Endpoint({ host: local.service, port: this.ctx.cfg.endpoint.port, log });
      await this.endpoint.listen().catch((err: Error) => log(`endpoint: ${errorMessage(err)}`));
    }

    process.on('SIGTERM', () => void this.stop('SIGTERM'));
    process.on('SIGINT', () => void this.stop('SIGINT'));
    // 4. the loops: this host's duties, the controller campaign, the monitor
    await Promise.all([this.loop(() => this.tick()), this.loop(() => this.campaign()), this.loop(() => this.controlCycle())]);
  }

  private async loop(fn: () => Promise<void>): Promise<void> {
    while (!this.stopping) {
      const started = Date.now();
      await fn().catch((err: unknown) => log(`agent: ${errorMessage(err)}`));
      await sleep(Math.max(10, this.L - (Date.now() - started)));
    }
  }

  private async stop(sig: string): Promise<void> {
    if (this.stopping) return;
    log(`received ${sig}, stopping (PostgreSQL keeps running)`);
    this.stopping = true;
    if (this.fenceTimer) clearTimeout(this.fenceTimer);
    await Promise.allSettled([this.controllerKey.release(), this.primaryKey.release(), this.session.release()]);
    await this.endpoint?.close();
    this.server?.close();
    await this.store.close();
    process.exit(0);
  }

  // ---- this host's duties ----------------------------------------------------

  /** One cycle: observe the local nodes, publish them, hold or give up the primary lease, point the endpoint. */
  private async tick(): Promise<void> {
    const secrets = requireSecrets(this.ctx);
    for (const n of this.nodes) this.observations.set(n.name, await observe(this.ctx, n, secrets, this.lastState?.fenced.includes(n.name) ?? false));
    try {
      await this.etcdTick();
      this.etcdIs(true);
    } catch (err) {
      if (!(err instanceof PgmError && err.code === 'dcs.unavailable')) throw err;
      this.etcdIs(false, err.message);
      await this.offline();
    }
  }

  private async etcdTick(): Promise<void> {
    const c = this.store.client;
    if (!(this.session.holding && (await this.session.renew()))) await this.session.acquire(JSON.stringify({ host: this.me.name, pid: process.pid, started: new Date().toISOString() }));
    const gk = this.store.keys.group(this.ctx.group);
    const [stKv, holderKv, members] = await Promise.all([c.get(gk.state), c.get(gk.primary), c.list(gk.members)]);
    const st = stKv ? (JSON.parse(stKv.value) as ClusterState) : null;
    this.lastState = st;
    this.lastHolder = holderKv?.value ?? null;
    const pm = st ? members.find((m) => m.key === gk.member(st.primary)) : undefined;
    const pl = pm ? (JSON.parse(pm.value) as { walLsn: string | null }).walLsn : null;
    this.primaryLsn = pl === null ? this.primaryLsn : BigInt(pl);
    const lease = this.session.leaseId;
    for (const n of this.nodes) {
      const o = this.observations.get(n.name)!;
      const rec = { node: n.name, host: this.me.name, at: new Date().toISOString(), sqlOk: o.sqlOk, inRecovery: o.inRecovery, walLsn: o.walLsn?.toString() ?? null, receiveLsn: o.receiveLsn?.toString() ?? null, replayLsn: o.replayLsn?.toString() ?? null, timeline: o.timeline };
      if (lease) await c.txn([], [{ put: gk.member(n.name), value: JSON.stringify(rec), lease }]);
    }
    while (this.pendingEvents.length > 0) {
      await this.store.appendEvent(this.pendingEvents[0].sentence, this.pendingEvents[0].at);
      this.pendingEvents.shift();
    }
    await this.primaryDuty(st, stKv?.modRevision ?? null);
    this.pointEndpoint(st, this.lastHolder);
  }

  /** Holds the primary lease exactly while a node of this host is the group's primary, running as one. */
  private async primaryDuty(st: ClusterState | null, revision: string | null): Promise<void> {
    const ours = st ? this.nodes.find((n) => n.name === st.primary) : undefined;
    const held = this.primaryKey.holding;
    if (held) {
      const name = this.lastHolder ?? ours?.name ?? '?';
      const stillOurs = st && ours && st.primary === ours.name && !st.pending && !st.fenced.includes(ours.name);
      if (!stillOurs) {
        // the state moved on (a failover or switchover): make sure ours refuses writes, then let go
        const n = this.ctx.cfg.nodes.find((x) => x.name === name && x.host === this.me.name);
        if (n && this.observations.get(n.name)?.inRecovery === false) await this.ctx.control(n).fence('the state names another primary');
        await this.primaryKey.release();
        this.event(`${name} gave up its primary lease: ${st?.pending ? `a ${st.pending.kind} to ${st.pending.to} is in progress` : `the state names ${st?.primary ?? 'no'} primary`}`);
        return;
      }
      if (await this.primaryKey.renew()) return this.armFence();
    }
    if (!ours || !st || st.pending || st.fenced.includes(ours.name) || revision === null) return;
    const o = this.observations.get(ours.name);
    if (!o || o.inRecovery !== false || !(o.sqlOk || o.probeMs !== null)) return;
    const gk = this.store.keys.group(this.ctx.group);
    if (await this.primaryKey.acquire(ours.name, [{ key: gk.state, target: 'Mod', revision }])) {
      this.event(`${ours.name} holds the primary lease (ttl ${this.T / 1000} s)`);
      this.armFence();
    }
  }

  /** The self-fence: fires before the primary lease (or the failsafe) can run out, unless a renewal moved it. */
  private armFence(): void {
    if (this.fenceTimer) clearTimeout(this.fenceTimer);
    const until = Math.max(this.primaryKey.validUntil, this.failsafeUntil) - this.margin;
    this.fenceTimer = setTimeout(() => void this.fenceDeadline(), Math.max(0, until - Date.now()));
  }

  private async fenceDeadline(): Promise<void> {
    this.fenceTimer = null;
    if (!this.primaryKey.holding) return;
    const until = Math.max(this.primaryKey.validUntil, this.failsafeUntil) - this.margin;
    if (Date.now() < until) return this.armFence();
    const name = this.lastHolder ?? this.nodes.find((n) => n.name === this.lastState?.primary)?.name;
    const since = Date.now() - (this.primaryKey.validUntil - this.T);
    this.primaryKey.drop();
    this.endpoint?.setTarget(null, 'this host lost its primary lease');
    for (const n of this.nodes) {
      if (n.name !== name) continue;
      const r = await this.ctx.control(n).fence('primary lease about to expire');
      this.event(`${n.name} fenced itself (${r}): it could not renew its primary lease for ${(since / 1000).toFixed(1)} s and did not reach every other agent, so it refuses writes before the lease can expire`);
    }
  }

  /** etcd does not answer: while the primary lease still runs, try to reach every other agent directly (failsafe). */
  private async offline(): Promise<void> {
    if (!this.primaryKey.holding) return;
    const others = this.ctx.cfg.hosts.filter((h) => h.name !== this.me.name);
    const sent = Date.now();
    const results = await Promise.allSettled(others.map((h) => agentVerb(this.id, h, 'failsafe', { from: this.lastHolder ?? this.lastState?.primary ?? '' }, Math.min(this.L, 1000))));
    const missed = others.filter((_, i) => results[i].status === 'rejected').map((h) => h.name);
    if (missed.length === 0) {
      this.failsafeUntil = sent + this.T;
      if (!this.saidFailsafe) this.event(`failsafe: etcd does not answer, but ${this.lastHolder ?? 'the primary'} reached every other agent, so it keeps serving`);
      this.saidFailsafe = true;
      this.armFence();
    } else if (this.saidFailsafe) {
      this.saidFailsafe = false;
      this.event(`failsafe ended: etcd does not answer and ${missed.join(', ')} cannot be reached`);
    }
  }

  private etcdIs(up: boolean, why?: string): void {
    if (this.etcdUp === up) return;
    if (this.etcdUp !== null || !up) log(up ? 'etcd answers again' : `etcd does not answer: ${why}`);
    if (up && this.etcdUp === false) this.event(`host ${this.me.name}: etcd answers again`);
    if (up) this.saidFailsafe = false;
    this.etcdUp = up;
  }

  private pointEndpoint(st: ClusterState | null, holder: string | null): void {
    if (!this.endpoint || !st) return;
    const ok = !st.pending && !st.fenced.includes(st.primary) && holder === st.primary;
    const n = ok ? findNode(this.ctx.cfg, st.primary) : null;
    const target = n ? { name: n.name, host: n.service, port: n.port } : null;
    const cur = this.endpoint.target;
    if ((cur?.name ?? null) !== (target?.name ?? null)) this.endpoint.setTarget(target, target ? `${target.name} is the primary` : 'no primary holds the lease');
  }

  private async afterFence(node: string, reason: string): Promise<void> {
    if (this.primaryKey.holding && (this.lastHolder === node || this.lastState?.primary === node)) {
      if (this.fenceTimer) clearTimeout(this.fenceTimer);
      await this.primaryKey.release().catch(() => this.primaryKey.drop());
      this.endpoint?.setTarget(null, `${node} was fenced: ${reason}`);
    }
  }

  // ---- controller ------------------------------------------------------------

  private async campaign(): Promise<void> {
    const c = this.store.client;
    const paused = (await c.get(this.store.keys.paused).catch(() => null)) !== null;
    if (paused) {
      if (this.controllerKey.holding) await this.controllerKey.release();
      return;
    }
    const had = this.controllerKey.holding;
    const ok = had ? await this.controllerKey.renew() : await this.controllerKey.acquire(this.me.name);
    if (ok && !had) {
      this.store.setGuard(this.controllerKey.leaseId);
      this.event(`host ${this.me.name} is the controller`);
    }
    if (!ok && had) log('lost the controller lease');
  }

  private mayAct(): boolean {
    return this.controllerKey.holding && Date.now() < this.controllerKey.validUntil - this.margin;
  }

  private async controlCycle(): Promise<void> {
    if (!this.mayAct() || this.cycling) return;
    if (!(await this.store.read(this.ctx.group))) return; // not provisioned yet: up writes the state last
    this.cycling = true;
    try {
      await this.monitor.cycle();
    } finally {
      this.cycling = false;
    }
  }

  private hooks(): PrimaryHooks {
    return {
      setPrimary: (name, reason) => {
        if (!this.endpoint) return;
        const n = name === null ? null : findNode(this.ctx.cfg, name);
        this.endpoint.setTarget(n ? { name: n.name, host: n.service, port: n.port } : null, reason);
      },
    };
  }

  private async command(verb: string, body: Record<string, unknown>): Promise<string> {
    if (['switchover', 'failover', 'rejoin', 'restart'].includes(verb)) {
      if (!this.mayAct()) {
        const holder = (await this.store.client.get(this.store.keys.controller))?.value ?? 'nobody';
        throw new PgmError('agent.refused', `host ${this.me.name} is not the controller (${holder} is).`, { hint: 'ask the controller; pgmaestro does that by itself, retry.' });
      }
      const event = (s: string) => this.event(s);
      const run = () =>
        verb === 'switchover'
          ? switchoverCommand(this.ctx, String(body.to), this.hooks(), event)
          : verb === 'failover'
            ? failoverCommand(this.ctx, typeof body.to === 'string' ? body.to : null, this.hooks(), event)
            : rejoinCommand(this.ctx, String(body.node), event);
      const sentence = await this.monitor.exclusive(run);
      this.event(sentence);
      return sentence;
    }
    throw new PgmError('usage', `the agent has no command ${verb}.`, { hint: 'run the same version of pgmaestro on every host.' });
  }

  /** The fencing token of a promotion: the state in etcd must name this node as the target of the step in progress, and no other node may hold the primary lease. */
  private async checkPromotion(node: string): Promise<void> {
    const st = await this.reader.read(this.ctx.group);
    const holder = await this.reader.primaryHolder(this.ctx.group);
    if (st?.pending?.to !== node && st?.primary !== node) {
      throw new PgmError('agent.refused', `no promotion of ${node} is in progress in etcd${st?.pending ? ` (the step in progress promotes ${st.pending.to})` : ''}.`, { hint: 'only the controller promotes, and only after recording the step.' });
    }
    if (holder !== null && holder !== node) {
      throw new PgmError('agent.refused', `${holder} still holds the primary lease, so ${node} may not be promoted.`, { hint: 'wait until the old primary is fenced or its lease expires.' });
    }
  }

  private health(node: string | null) {
    const n = node ? this.nodes.find((x) => x.name === node) : this.nodes[0];
    const obs = n ? (this.observations.get(n.name) ?? null) : null;
    const authority = !!n && ((this.primaryKey.holding && this.lastHolder === n.name) || Date.now() < this.failsafeUntil || (this.primaryKey.holding && Date.now() < this.primaryKey.validUntil));
    const pos = obs?.replayLsn ?? obs?.receiveLsn ?? null;
    const lag = obs && pos !== null && this.primaryLsn !== null ? Math.max(0, Number(lsnDiff(this.primaryLsn, pos))) : null;
    return { obs, primaryAuthority: authority, lagBytes: lag };
  }

  /** Records an event in etcd; kept in order and sent later while etcd does not answer. */
  private event(sentence: string): void {
    log(sentence);
    const at = new Date();
    if (this.etcdUp === false || this.pendingEvents.length > 0) {
      this.pendingEvents.push({ sentence, at });
      return;
    }
    this.store.appendEvent(sentence, at).catch(() => this.pendingEvents.push({ sentence, at }));
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

