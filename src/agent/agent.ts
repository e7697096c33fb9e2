import fs from 'node:fs';
import type https from 'node:https';
import path from 'node:path';
import { openCluster, findNode, requireSecrets, type ClusterContext } from '../cluster/context.js';
import { fenceMarginMs } from '../config/load.js';
import type { ClusterConfig, HostConfig, NodeConfig } from '../config/types.js';
import { EtcdStateStore } from '../dcs/etcd.js';
import type { Kv } from '../dcs/etcd-client.js';
import { LeasedKey } from '../dcs/lease.js';
import type { ClusterState } from '../dcs/store.js';
import { PgmError, errorMessage } from '../errors.js';
import { Endpoint } from '../router/tcp.js';
import { startConsole, type ConsoleService } from '../web/console.js';
import type { EndpointStat } from '../web/source.js';
import type { PrimaryHooks } from '../ha/failover.js';
import type { NodeObservation } from '../ha/observations.js';
import { observe } from '../ha/probe.js';
import { lsnDiff } from '../postgres/lsn.js';
import { createAgentServer } from './api.js';
import { loadIdentity, type TlsIdentity } from './certs.js';
import { checkConfig } from './config-check.js';
import { Controller, type ClusterView } from './controller.js';
import { guardFiles, takeFiring, type GuardFiles } from './guard.js';
import { HostVip } from './host-vip.js';
import { PrimaryLease } from './primary-lease.js';

/**
 * `pgmaestro agent --host NAME`: controls the nodes of its host, and
 *  - publishes what it sees of them (member keys, under its session lease);
 *  - as the primary's host: holds the group's primary lease and keeps its
 *    promise to refuse writes before it can expire (primary-lease.ts, with
 *    the host's guard as a watchdog);
 *  - starts again a local replica whose postmaster died;
 *  - campaigns for the controller lease and, while it holds it, runs the
 *    monitor and the operator's HA commands (controller.ts);
 *  - serves the read-write endpoint for its host, following the state, the
 *    web console and /metrics (read-only), and Patroni-compatible health
 *    checks on its HTTPS port.
 * Its loops poll every loop_wait and wake at once when the state, the
 * primary key or the controller key change (etcd watches).
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
  const id = loadIdentity(loaded, hostName);
  const ctx = await openCluster(loaded, undefined, { host: hostName });
  await new Agent(ctx, id).run();
}

const log = (line: string) => process.stdout.write(`${new Date().toISOString()} ${line}\n`);

/** The argv that runs this same pgmaestro again with `args` (the guard). */
export function selfArgv(args: readonly string[]): string[] {
  return [process.execPath, ...process.execArgv, process.argv[1], ...args];
}

class Agent {
  private readonly me: HostConfig;
  private readonly store: EtcdStateStore;
  /** Reads for checking promotions go through a store of their own, so they never move the controller's revision check. */
  private readonly reader: EtcdStateStore;
  private readonly L: number;
  private readonly T: number;
  private readonly session: LeasedKey;
  private readonly lease: PrimaryLease;
  private readonly controller: Controller;
  private readonly guard: GuardFiles;
  private readonly vip: HostVip;
  private readonly nodes: readonly NodeConfig[];
  private readonly observations = new Map<string, NodeObservation>();
  /** Node verbs running now, by node: the agent leaves such a node alone. */
  private readonly busy = new Map<string, string>();
  /** Nodes stopped on request (a stop verb): not started again until asked. */
  private readonly heldStopped = new Set<string>();
  private readonly downTicks = new Map<string, number>();
  private endpoint: Endpoint | null = null;
  private web: ConsoleService | null = null;
  private server: https.Server | null = null;
  private stopping = false;
  private etcdUp: boolean | null = null;
  private view: ClusterView & { holder: string | null } = { state: null, paused: false, agents: [], holder: null };
  private primaryLsn: bigint | null = null;
  private failsafeFrom: { from: string; at: number } | null = null;
  private pendingEvents: { sentence: string; at: Date; id: number }[] = [];
  private eventId = 0;
  private readonly wakeups = new Set<() => void>();

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
    const margin = fenceMarginMs(cfg);
    this.nodes = cfg.nodes.filter((n) => n.host === id.host);
    this.session = new LeasedKey(this.store.client, this.store.keys.agent(id.host), this.T);
    this.guard = guardFiles(ctx.paths.stateDir, ctx.paths.logsDir, id.host);
    this.vip = new HostVip(cfg, this.nodes, log);
    this.lease = new PrimaryLease({
      ctx,
      store: this.store,
      id,
      me: this.me,
      nodes: this.nodes,
      ttlMs: this.T,
      loopMs: this.L,
      marginMs: margin,
      guard: this.guard,
      guardArgv: selfArgv(['agent', 'guard', '--host', id.host, '-c', cfg.file]),
      observation: (n) => this.observations.get(n),
      event: (s) => this.event(s),
      log,
      endpointOff: (reason) => this.endpoint?.setTarget(null, reason),
      vip: this.vip,
    });
    this.controller = new Controller({
      ctx,
      store: this.store,
      me: this.me,
      ttlMs: this.T,
      marginMs: margin,
      hooks: this.hooks(),
      failsafeSeen: () => this.failsafeSeen(),
      event: (s) => this.event(s),
      log,
    });
    this.store.client.onReconnect = (from, to, why) => this.event(`host ${id.host}: etcd member ${from} failed (${why}); now talking to ${to}`);
  }

  async run(): Promise<void> {
    // 1. etcd: wait until it answers (saying so once), then agree on the configuration; nothing is served before
    for (let said = false; ; ) {
      try {
        await checkConfig(this.store, this.ctx.cfg, this.me.name);
        break;
      } catch (err) {
        if (!(err instanceof PgmError) || err.code !== 'dcs.unavailable') throw err;
        if (!said) log(`${err.render()} Retrying every ${this.L / 1000} s.`);
        said = true;
        await this.sleep(this.L);
      }
    }
    // 2. the API: node control for the controller, health checks for load balancers
    this.server = createAgentServer(this.ctx, this.id, {
      health: (node) => this.health(node),
      failsafe: (from) => (this.failsafeFrom = { from, at: Date.now() }),
      failsafeSeen: () => this.failsafeSeen(),
      checkPromotion: (node) => this.checkPromotion(node),
      command: (verb, body) => this.controller.command(verb, body),
      fenced: (node, reason) => void this.lease.fenced(node, reason),
      around: (node, verb, fn) => this.around(node, verb, fn),
      info: () => ({ host: this.me.name, pid: process.pid, controller: this.controller.holding, etcd: this.store.client.pinned, primaryLease: this.lease.node }),
    }, log);
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', (err: NodeJS.ErrnoException) =>
        reject(new PgmError('port.in_use', `the agent cannot listen on ${this.me.agent.host}:${this.me.agent.port}: ${err.code === 'EADDRINUSE' ? 'the port is in use' : err.message}.`, { hint: `stop what uses it, or change hosts[].agent of ${this.me.name}.` })),
      );
      this.server!.listen(this.me.agent.port, this.me.agent.host, () => resolve());
    });

    log(`agent of host ${this.me.name} started (pid ${process.pid}) on ${this.me.agent.host}:${this.me.agent.port}; nodes ${this.nodes.map((n) => n.name).join(', ') || 'none'}`);
    await this.lease.adopt().catch((err: unknown) => log(`cannot adopt the primary lease: ${errorMessage(err)}`));
    if (this.lease.node === null) await this.vip.release(); // a VIP left by an agent that died

    // 3. the endpoint of this host
    const local = this.nodes[0];
    const rw = this.ctx.cfg.endpoints.rw;
    if (local && rw) {
      this.endpoint = new Endpoint({ host: local.service, port: rw.port, holdMs: this.ctx.cfg.endpoints.holdMs, log });
      await this.endpoint.listen().catch((err: Error) => log(`endpoint: ${errorMessage(err)}`));
    }
    // the console of this host: what status says, from etcd and the agents; operator actions stay with the CLI (no token allows them here)
    const consoleAt = this.ctx.cfg.endpoints.console;
    if (local && consoleAt) {
      const endpoints = (): EndpointStat[] => {
        const s = this.endpoint?.stats;
        if (!s) return [];
        return [{ name: 'rw', address: s.address, target: s.target?.name ?? null, connections: s.active + s.connecting, waiting: s.held, bytesFromClients: s.bytesFromClients, bytesToClients: s.bytesToClients, decisions: {}, pid: process.pid }];
      };
      this.web = await startConsole(this.ctx, { host: local.service, port: consoleAt.port, hooks: { endpoints }, log }).catch((err: unknown) => {
        log(`console not started: ${errorMessage(err)}`);
        return null;
      });
      if (this.web) log(`console of host ${this.me.name}: http://${this.web.address}/`);
    }

    // 4. wake the loops when what they act on changes
    const gk = this.store.keys.group(this.ctx.group);
    for (const k of [gk.state, gk.primary, this.store.keys.controller]) await this.store.client.watch(k, () => this.wake()).catch(() => undefined);

    process.on('SIGTERM', () => void this.stop('SIGTERM'));
    process.on('SIGINT', () => void this.stop('SIGINT'));
    // 5. the loops: this host's duties, the controller campaign, the monitor
    await Promise.all([this.loop(() => this.tick()), this.loop(() => this.campaign(), false), this.loop(() => this.controller.cycle())]);
  }

  private async loop(fn: () => Promise<void>, wakes = true): Promise<void> {
    while (!this.stopping) {
      const started = Date.now();
      await fn().catch((err: unknown) => log(`agent: ${errorMessage(err)}`));
      const rest = Math.max(50, this.L - (Date.now() - started));
      await (wakes ? this.sleep(rest) : new Promise((r) => setTimeout(r, rest)));
    }
  }

  /** Sleeps `ms`, or less when woken. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakeups.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeups.add(done);
    });
  }

  private wake(): void {
    for (const f of [...this.wakeups]) f();
  }

  private async stop(sig: string): Promise<void> {
    if (this.stopping) return;
    log(`received ${sig}, stopping (PostgreSQL keeps running)`);
    this.stopping = true;
    const kept = await this.lease.stop().catch(() => 'none');
    if (kept === 'kept') log(`the primary keeps its lease and its armed guard: the next agent of host ${this.me.name} adopts them, or the guard fences it when the lease runs out`);
    await Promise.allSettled([this.controller.stop(), this.session.release()]);
    await Promise.allSettled([this.endpoint?.close(), this.web?.stop()]);
    this.server?.close();
    await this.store.close();
    process.exit(0);
  }

  /** A node verb of the API: the node is left alone by the agent meanwhile; a stop holds it stopped until a start. */
  private async around<T>(node: string, verb: string, fn: () => Promise<T>): Promise<T> {
    this.busy.set(node, verb);
    try {
      const r = await fn();
      if (verb === 'stop') this.heldStopped.add(node);
      if (['start', 'clone', 'rebuild', 'init-primary'].includes(verb)) this.heldStopped.delete(node);
      return r;
    } finally {
      this.busy.delete(node);
    }
  }

  // ---- this host's duties ----------------------------------------------------

  /** One cycle: observe the local nodes, publish them, hold or give up the primary lease, restart dead replicas, point the endpoint. */
  private async tick(): Promise<void> {
    const secrets = requireSecrets(this.ctx);
    for (const n of this.nodes) this.observations.set(n.name, await observe(this.ctx, n, secrets, this.view.state?.fenced.includes(n.name) ?? false));
    const fired = takeFiring(this.guard);
    if (fired) this.event(`${fired.node} was fenced by the guard of host ${this.me.name}: its agent did not renew the primary lease in time (${fired.lateMs} ms past the deadline), so the guard stopped it before the lease could expire`);
    try {
      await this.etcdTick();
      this.etcdIs(true);
    } catch (err) {
      if (!(err instanceof PgmError && err.code === 'dcs.unavailable')) throw err;
      this.etcdIs(false, err.message);
      await this.lease.offline();
    }
  }

  private async etcdTick(): Promise<void> {
    const c = this.store.client;
    const k = this.store.keys;
    if (!(this.session.holding && (await this.session.renew()))) await this.session.acquire(JSON.stringify({ host: this.me.name, pid: process.pid, started: new Date().toISOString() }));
    const gk = k.group(this.ctx.group);
    const [stKv, holderKv, members, paused, agents] = await c.readMany([{ key: gk.state }, { key: gk.primary }, { key: gk.members, prefix: true }, { key: k.paused }, { key: k.agents, prefix: true }]);
    const st = stKv[0] ? (JSON.parse(stKv[0].value) as ClusterState) : null;
    const holder = holderKv[0]?.value ?? null;
    if (holder !== this.view.holder && holder !== this.lease.node) void this.vip.release(); // someone else carries it now
    this.view = { state: st, holder: holderKv[0]?.value ?? null, paused: paused.length > 0, agents: agents.map((a) => a.key.slice(k.agents.length)) };
    this.notePrimaryLsn(st, members);
    await this.publish();
    while (this.pendingEvents.length > 0) {
      await this.store.appendEvent(this.pendingEvents[0].sentence, this.pendingEvents[0].at, this.pendingEvents[0].id);
      this.pendingEvents.shift();
    }
    await this.lease.duty(st, stKv[0]?.modRevision ?? null);
    await this.restartReplicas(st);
    this.pointEndpoint(st, this.view.holder);
  }

  private notePrimaryLsn(st: ClusterState | null, members: Kv[]): void {
    const pm = st ? members.find((m) => m.key === this.store.keys.group(this.ctx.group).member(st.primary)) : undefined;
    const pl = pm ? (JSON.parse(pm.value) as { walLsn: string | null }).walLsn : null;
    if (pl !== null) this.primaryLsn = BigInt(pl);
  }

  /** Each local node's observation, under the session lease (gone with the agent). */
  private async publish(): Promise<void> {
    const lease = this.session.leaseId;
    if (!lease) return;
    const gk = this.store.keys.group(this.ctx.group);
    for (const n of this.nodes) {
      const o = this.observations.get(n.name)!;
      const rec = { node: n.name, host: this.me.name, at: new Date().toISOString(), sqlOk: o.sqlOk, inRecovery: o.inRecovery, walLsn: o.walLsn?.toString() ?? null, receiveLsn: o.receiveLsn?.toString() ?? null, replayLsn: o.replayLsn?.toString() ?? null, timeline: o.timeline };
      await this.store.client.txn([], [{ put: gk.member(n.name), value: JSON.stringify(rec), lease }]);
    }
  }

  /**
   * A local replica whose postmaster is gone (seen twice in a row) is started
   * again, pointed at the current primary — unless a step is in progress, the
   * cluster is paused, it is fenced, it was stopped on request, a verb works
   * on it, or its data directory is not set up as a replica.
   */
  private async restartReplicas(st: ClusterState | null): Promise<void> {
    for (const n of this.nodes) {
      const o = this.observations.get(n.name);
      const eligible = st && !st.pending && !this.view.paused && n.name !== st.primary && !st.fenced.includes(n.name) && !this.busy.has(n.name) && !this.heldStopped.has(n.name) && o?.postmasterAlive === false;
      if (!eligible) {
        this.downTicks.delete(n.name);
        continue;
      }
      const ticks = (this.downTicks.get(n.name) ?? 0) + 1;
      this.downTicks.set(n.name, ticks);
      if (ticks < 2 || !fs.existsSync(path.join(n.dataDir, 'standby.signal'))) continue;
      this.downTicks.delete(n.name);
      await this.around(n.name, 'restart', async () => {
        const control = this.ctx.control(n);
        await control.configure({ kind: 'replica', upstream: st!.primary });
        await control.start();
      }).then(
        () => this.event(`${n.name}: its postmaster was not running, so its agent started it again as a replica of ${st!.primary}`),
        (err: unknown) => this.event(`${n.name}: its postmaster is not running and its agent could not start it: ${errorMessage(err)}`),
      );
    }
  }

  private etcdIs(up: boolean, why?: string): void {
    if (this.etcdUp === up) return;
    if (this.etcdUp !== null || !up) log(up ? 'etcd answers again' : `etcd does not answer: ${why}`);
    if (up && this.etcdUp === false) this.event(`host ${this.me.name}: etcd answers again`);
    if (up) this.lease.online();
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

  // ---- controller ------------------------------------------------------------

  private async campaign(): Promise<void> {
    if (this.etcdUp !== true) return; // the tick reads the view; without etcd there is nothing to campaign with
    await this.controller.campaign(this.view);
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

  private failsafeSeen(): { from: string; ageMs: number } | null {
    return this.failsafeFrom ? { from: this.failsafeFrom.from, ageMs: Date.now() - this.failsafeFrom.at } : null;
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
    const pos = obs?.replayLsn ?? obs?.receiveLsn ?? null;
    const lag = obs && pos !== null && this.primaryLsn !== null ? Math.max(0, Number(lsnDiff(this.primaryLsn, pos))) : null;
    return { obs, primaryAuthority: !!n && this.lease.authority(n.name), lagBytes: lag };
  }

  /** Records an event in etcd; kept in order and sent later while etcd does not answer. */
  private event(sentence: string): void {
    log(sentence);
    // one id per event: a request that timed out although etcd recorded it is retried under the same key, so never recorded twice
    const ev = { sentence, at: new Date(), id: this.eventId++ };
    if (this.etcdUp === false || this.pendingEvents.length > 0) {
      this.pendingEvents.push(ev);
      return;
    }
    this.store.appendEvent(ev.sentence, ev.at, ev.id).catch(() => this.pendingEvents.push(ev));
  }
}
