import type { ClusterContext } from '../cluster/context.js';
import { currentPrimaryName } from '../cluster/context.js';
import { up } from '../cluster/provision.js';
import { ensureSecrets } from '../cluster/secrets.js';
import { identityHost } from '../cluster/multihost.js';
import type { EtcdStateStore } from '../dcs/etcd.js';
import { PgmError } from '../errors.js';
import { ensureCerts, loadIdentity } from './certs.js';
import { agentCall, agentVerb } from './http.js';
import type { AgentInfo } from './api.js';
import { agentProcesses, etcdProcesses, guardProcesses, startAgents, startEtcd, stopAll } from './lab-processes.js';
import { withLocks } from '../cluster/lock.js';

/**
 * The CLI's side of a multi-host cluster: `up`, `down`, status and the
 * operator commands, from any host, through etcd and the agents.
 */

/**
 * up: in the lab, the etcd members and agents first (and the certificates);
 * then, holding the cluster lock in etcd, provision through the agents; then
 * let the controllers act.
 */
export async function upMultiHost(ctx: ClusterContext, waitMs: number | null, log: (s: string) => void): Promise<void> {
  if (ctx.lab) {
    for (const m of await ensureCerts(ctx.cfg)) log(`certs: created ${m}`);
    ensureSecrets(ctx.cfg, ctx.user);
    await startEtcd(ctx, log);
    await startAgents(ctx, log);
  }
  const store = ctx.store as EtcdStateStore;
  await withLocks(ctx.locks, ['cluster'], 'pgmaestro up', waitMs, () => up(ctx, log));
  await store.client.txn([], [{ del: store.keys.paused }]);
}

/**
 * down: hold the controllers still, stop every node through its agent (the
 * primary first) holding the cluster lock, then in the lab the agents, their
 * guards and etcd. With etcd unreachable it still stops what it can reach.
 */
export async function downMultiHost(ctx: ClusterContext, waitMs: number | null, log: (s: string) => void): Promise<void> {
  const store = ctx.store as EtcdStateStore;
  const reachable = await store.client
    .txn([], [{ put: store.keys.paused, value: JSON.stringify({ by: 'pgmaestro down', at: new Date().toISOString() }) }])
    .then(() => true, (err: PgmError) => (log(`etcd: ${err.message} The nodes are stopped without the cluster lock.`), false));
  const stopNodes = async () => {
    const primary = reachable ? await currentPrimaryName(ctx).catch(() => ctx.cfg.initialPrimary) : ctx.cfg.initialPrimary;
    const ordered = [...ctx.cfg.nodes].sort((a, b) => Number(b.name === primary) - Number(a.name === primary));
    for (const node of ordered) {
      const r = await ctx.control(node).stop().catch((err: Error) => `not stopped (${err.message.replace(/\.$/, '')})`);
      log(`${node.name}: ${r}`);
    }
  };
  if (reachable) await withLocks(ctx.locks, ['cluster'], 'pgmaestro down', waitMs, stopNodes);
  else await stopNodes();
  if (ctx.lab) {
    await stopAll(agentProcesses(ctx), log);
    await stopAll(guardProcesses(ctx), log);
    await stopAll(etcdProcesses(ctx), log);
  }
  await ctx.store.close();
}

/** Runs an HA command (switchover, failover, rejoin) in the agent holding the controller lease. */
export async function viaController(ctx: ClusterContext, verb: string, body: Record<string, unknown>): Promise<string> {
  const store = ctx.store as EtcdStateStore;
  const id = loadIdentity(ctx.cfg, identityHost(ctx.cfg, null));
  for (let attempt = 0; ; attempt++) {
    const holder = (await store.client.get(store.keys.controller))?.value ?? null;
    const host = ctx.cfg.hosts.find((h) => h.name === holder);
    if (!host) {
      if (attempt < 20) {
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      throw new PgmError('agent.unreachable', `no agent holds the controller lease of cluster ${ctx.cfg.cluster}, so nobody can carry out ${verb}.`, { hint: 'start the agents (pgmaestro up in the lab; systemctl start pgmaestro-agent on the hosts).' });
    }
    try {
      return await agentVerb<string>(id, host, `command/${verb}`, body, 3600_000);
    } catch (err) {
      if (err instanceof PgmError && err.code === 'agent.refused' && /is not the controller/.test(err.message) && attempt < 20) {
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      throw err;
    }
  }
}

export interface HostStatus {
  readonly name: string;
  readonly agent: string;
  readonly reachable: boolean;
  /** The etcd member the agent talks to now (when it answers). */
  readonly etcd?: string;
  readonly netns?: string;
}

export interface DcsStatus {
  readonly kind: 'etcd';
  readonly healthy: boolean;
  readonly members: { name: string; endpoints: string[]; healthy: boolean; leader: boolean }[];
  readonly error?: string;
}

/** status --json's multi-host parts: hosts (is each agent answering?), the controller, etcd's members. */
export async function multiHostStatus(ctx: ClusterContext): Promise<{ hosts: HostStatus[]; controller: string | null; dcs: DcsStatus }> {
  const store = ctx.store as EtcdStateStore;
  let id: ReturnType<typeof loadIdentity> | null = null;
  try {
    id = loadIdentity(ctx.cfg, identityHost(ctx.cfg, null));
  } catch {
    id = null;
  }
  const hosts = await Promise.all(
    ctx.cfg.hosts.map(async (h): Promise<HostStatus> => {
      const info = id ? await agentCall(id, h, 'GET', '/v1/info', undefined, 1500).then((r) => r.body as AgentInfo, () => null) : null;
      const netns = ctx.lab?.hosts.find((x) => x.name === h.name)?.netns;
      return { name: h.name, agent: `${h.agent.host}:${h.agent.port}`, reachable: info !== null, ...(info?.etcd ? { etcd: info.etcd } : {}), ...(netns ? { netns } : {}) };
    }),
  );
  let controller: string | null = null;
  let dcs: DcsStatus;
  try {
    controller = (await store.client.get(store.keys.controller))?.value ?? null;
    const members = await store.client.members();
    dcs = { kind: 'etcd', healthy: members.filter((m) => m.healthy).length > members.length / 2, members };
  } catch (err) {
    dcs = { kind: 'etcd', healthy: false, members: [], error: (err as Error).message };
  }
  return { hosts, controller, dcs };
}
