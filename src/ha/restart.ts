import type { NodeConfig } from '../config/types.js';
import { REPLICA_MINIMUMS } from '../config/load.js';
import { PgmError } from '../errors.js';
import { parseLsn } from '../postgres/lsn.js';
import { withClient } from '../postgres/sql.js';
import { adminTarget, currentPrimaryName, findNode, type ClusterContext } from '../cluster/context.js';
import { waitHealthy } from '../cluster/health.js';
import type { Secrets } from '../cluster/secrets.js';
import type { PrimaryHooks } from './failover.js';
import { holdNewConnections, releaseHold } from './hold.js';
import { switchover } from './switchover.js';

export interface RestartOptions {
  /** Only these nodes (empty: every running node). */
  readonly nodes: readonly string[];
  /** Only nodes with settings waiting for a restart. */
  readonly pending: boolean;
  /** How the primary restarts: by a switchover (the default when a replica can take over) or in place. */
  readonly primary: 'switchover' | 'in-place' | 'auto';
}

/** Restart options as a request carries them (the daemon's control socket, an agent's API). */
export function restartOptions(b: Record<string, unknown>): RestartOptions {
  return { nodes: Array.isArray(b.nodes) ? b.nodes.map(String) : [], pending: b.pending === true, primary: b.primary === 'in-place' || b.primary === 'switchover' ? b.primary : 'auto' };
}

interface NodeView {
  readonly node: NodeConfig;
  readonly replica: boolean;
  readonly pending: readonly string[];
  readonly replay: bigint;
  /** Current values of the settings a replica needs at least as high as its primary. */
  readonly minimums: Readonly<Record<string, number>>;
}

/** What a rolling restart will do, in order; pure, so the order rules are tested without a server. */
export function restartPlan(views: readonly NodeView[], primaryName: string, opts: RestartOptions, configured: (node: NodeConfig, name: string) => number | null): { order: NodeView[]; primaryFirst: boolean; how: 'switchover' | 'in-place' | null; to: string | null } {
  const targets = views.filter((v) => (opts.nodes.length === 0 || opts.nodes.includes(v.node.name)) && (!opts.pending || v.pending.length > 0));
  const primary = targets.find((v) => v.node.name === primaryName) ?? null;
  const replicas = targets.filter((v) => v.node.name !== primaryName);
  // lowering a must-match setting goes primary first (a replica may never be below its primary); raising, replicas first
  const p = views.find((v) => v.node.name === primaryName);
  const primaryFirst = primary !== null && p !== undefined && Object.keys(REPLICA_MINIMUMS).some((name) => {
    const want = configured(p.node, name);
    return want !== null && want < p.minimums[name];
  });
  let how: 'switchover' | 'in-place' | null = null;
  let to: string | null = null;
  if (primary) {
    const candidates = views.filter((v) => v.replica && !v.node.nofailover).sort((a, b) => (a.replay === b.replay ? b.node.priority - a.node.priority : a.replay > b.replay ? -1 : 1));
    if (opts.primary !== 'in-place' && !primaryFirst && candidates.length > 0) {
      how = 'switchover';
      to = candidates[0].node.name;
    } else {
      how = 'in-place';
    }
  }
  const order = primaryFirst ? [...(primary ? [primary] : []), ...replicas] : [...replicas, ...(primary ? [primary] : [])];
  return { order, primaryFirst, how, to };
}

/**
 * `pgmaestro restart [NODE…] [--pending] [--switchover | --in-place]`: a
 * rolling restart. Replicas one at a time, each back and streaming before the
 * next; the primary by a switchover to the most advanced replica (it then
 * follows as a replica) or in place, with the endpoint holding new
 * connections meanwhile. Lowering a setting a replica needs at least as high
 * as its primary goes primary first, in place. A node that does not come back
 * stops the roll; the rest stay as they were. The caller holds the cluster
 * lock (and, in the daemon, pauses the monitor), so a planned restart is
 * never taken for a failure.
 */
export async function rollingRestart(ctx: ClusterContext, secrets: Secrets, opts: RestartOptions, hooks: PrimaryHooks, log: (line: string) => void): Promise<string> {
  for (const n of opts.nodes) findNode(ctx.cfg, n);
  const fenced = new Set((await ctx.store.read())?.fenced ?? []);
  const primaryName = await currentPrimaryName(ctx);
  const isRunning = async (n: NodeConfig) => (await ctx.control(n).inspect()).pid !== null;
  const runningNodes = async (nodes: readonly NodeConfig[]) => {
    const up = await Promise.all(nodes.map(isRunning));
    return nodes.filter((_, i) => up[i]);
  };
  for (const n of opts.nodes) {
    const node = findNode(ctx.cfg, n);
    if (fenced.has(n)) throw new PgmError('usage', `${n} is fenced since a failover; a restart would not bring it back.`, { hint: `rebuild it with pgmaestro rejoin ${n}.` });
    if (!(await isRunning(node))) throw new PgmError('node.down', `${n} is not running, so there is nothing to restart.`, { hint: 'start it with pgmaestro up.' });
  }

  // 1. observe: who is what, what waits for a restart, how far each replica has replayed
  const running = await runningNodes(ctx.cfg.nodes.filter((n) => !fenced.has(n.name)));
  const views = await Promise.all(running.map((n) => view(ctx, n, secrets)));
  const plan = restartPlan(views, primaryName, opts, (node, name) => configuredInt(ctx, node, name));
  if (plan.order.length === 0) return opts.pending ? 'no node has settings waiting for a restart' : 'no running node to restart';
  const primary = findNode(ctx.cfg, primaryName);
  const replicasOf = async () => {
    const now = await currentPrimaryName(ctx);
    return runningNodes(ctx.cfg.nodes.filter((n) => n.name !== now && !fenced.has(n.name)));
  };
  /** A restart through the node's control: on its own host, whichever host this runs on. */
  const restartNode = async (n: NodeConfig) => {
    await ctx.control(n).stop('fast', 120);
    await ctx.control(n).start();
  };

  // 2. restart, one node at a time
  const done: string[] = [];
  for (const v of plan.order) {
    const n = v.node;
    const why = v.pending.length > 0 ? ` for ${v.pending.join(', ')}` : '';
    try {
      if (n.name !== primaryName) {
        await restartNode(n);
        await waitHealthy(ctx, findNode(ctx.cfg, await currentPrimaryName(ctx)), [n], secrets, 120_000);
        log(`${n.name}: restarted${why}; streaming again`);
        done.push(n.name);
      } else if (plan.how === 'switchover') {
        log(`${n.name}: the primary; switching over to ${plan.to} so that it restarts as a replica${why}`);
        log(await switchover(ctx, secrets, plan.to!, hooks, log));
        done.push(`${n.name} (now a replica of ${plan.to})`);
      } else {
        // the endpoints hold new connections (recorded in the state, so they see it with or without a daemon)
        await holdNewConnections(ctx, `restart of the primary ${n.name}`);
        await hooks.setPrimary(null, `restart of the primary ${n.name}`);
        try {
          await restartNode(n);
        } finally {
          await releaseHold(ctx);
          await hooks.setPrimary(primary.name, `${primary.name} restarted`);
        }
        await waitHealthy(ctx, primary, await replicasOf(), secrets, 120_000);
        log(`${n.name}: the primary, restarted in place${why}; its replicas stream again`);
        done.push(n.name);
      }
    } catch (err) {
      const cause = err instanceof PgmError ? err.message.replace(/\.$/, '') : (err as Error).message;
      throw new PgmError('cluster.unhealthy', `the rolling restart stopped at ${n.name}: ${cause}${done.length > 0 ? `; already restarted: ${done.join(', ')}` : ''}; the other nodes were left as they were.`, {
        hint: `fix the cause on ${n.name} (its server log in ${n.dataDir}/log), then run pgmaestro up and restart again.`,
        cause: err,
      });
    }
  }

  // 3. what still waits (a setting only a later restart applies, or a node left out)
  const after = await Promise.all((await runningNodes(ctx.cfg.nodes)).map((n) => view(ctx, n, secrets).catch(() => null)));
  const still = after.filter((v): v is NodeView => v !== null && v.pending.length > 0).map((v) => `${v.node.name} (${v.pending.join(', ')})`);
  return `restarted ${done.join(', ')}${plan.primaryFirst ? ' (primary first: a setting a replica needs at least as high as its primary went down)' : ''}${still.length > 0 ? `; still waiting for a restart: ${still.join(', ')}` : ''}`;
}

async function view(ctx: ClusterContext, node: NodeConfig, secrets: Secrets): Promise<NodeView> {
  return withClient(adminTarget(ctx, node, secrets), async (c) => {
    const r = await c.query<{ rec: boolean; pending: string[]; replay: string | null }>(
      "SELECT pg_is_in_recovery() AS rec, ARRAY(SELECT name FROM pg_settings WHERE pending_restart ORDER BY name)::text[] AS pending, pg_last_wal_replay_lsn()::text AS replay",
    );
    const m = await c.query<{ name: string; setting: string }>('SELECT name, setting FROM pg_settings WHERE name = ANY($1)', [Object.keys(REPLICA_MINIMUMS)]);
    return {
      node,
      replica: r.rows[0].rec,
      pending: r.rows[0].pending,
      replay: r.rows[0].replay ? parseLsn(r.rows[0].replay) : 0n,
      minimums: Object.fromEntries(m.rows.map((x) => [x.name, Number(x.setting)])),
    };
  });
}

/** The value `node` is configured with for an integer setting (its override, the shared one, the baseline), or null. */
function configuredInt(ctx: ClusterContext, node: NodeConfig, name: string): number | null {
  const v = node.settings[name] ?? ctx.cfg.settings[name] ?? REPLICA_MINIMUMS[name];
  const n = typeof v === 'number' ? v : Number(v);
  return Number.isInteger(n) ? n : null;
}
