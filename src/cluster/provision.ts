import type { NodeConfig } from '../config/types.js';
import { slotName } from '../config/render.js';
import { PgmError } from '../errors.js';
import { checkPlanned, describe } from './reload.js';
import { reclone, replicasWithLostSlots } from '../ha/slots.js';
import { scramVerifier } from '../postgres/scram.js';
import { quoteIdent, quoteLiteral, withClient } from '../postgres/sql.js';
import { formatBytes } from '../util/format.js';
import { adminTarget, assertPathsReachable, currentPrimaryName, findNode, type ClusterContext } from './context.js';
import type { DataDirState } from './datadir.js';
import type { RoleSpec } from './node-control.js';
import { ensureSecrets, type Secrets } from './secrets.js';
import { waitHealthy } from './health.js';

export type Log = (line: string) => void;

/**
 * `pgmaestro up`: provision what is missing, start what is stopped, and return
 * once the primary accepts writes and every replica streams. Idempotent: on a
 * running cluster it changes nothing. Every check that can refuse runs before
 * anything is written, so bad input never leaves damage behind. Each node is
 * reached through its node control, so the same steps work for nodes on this
 * machine and on other hosts.
 */
export async function up(ctx: ClusterContext, log: Log): Promise<void> {
  const { cfg } = ctx;
  const primary = findNode(cfg, await currentPrimaryName(ctx));
  const fenced = new Set((await ctx.store.read())?.fenced ?? []);
  const replicas = cfg.nodes.filter((n) => n !== primary && !fenced.has(n.name));
  for (const name of fenced) log(`${name}: fenced since a failover; it stays stopped until \`pgmaestro rejoin ${name}\``);

  // 1. check every path and every node's directory before touching anything
  if (!ctx.cfg.dcs) assertPathsReachable(ctx); // multi-host: each agent checks its own host's paths (preflight)
  const states = new Map<string, DataDirState>();
  for (const node of [primary, ...replicas]) states.set(node.name, await ctx.control(node).preflight());
  checkSameSystem(primary, replicas, states);
  // PostgreSQL itself reads every node's new configuration, on its host, before any file is written
  await checkPlanned(ctx, [{ node: primary, role: { kind: 'primary' } }, ...replicas.map((n) => ({ node: n, role: { kind: 'replica', upstream: primary.name } as RoleSpec }))]);

  // 2. secrets, generated once
  const secrets = ensureSecrets(cfg, ctx.user);

  // 3. the primary: create it if it has no data, apply the rendered files, start it
  if (states.get(primary.name)!.kind === 'empty') {
    await ctx.control(primary).initPrimary();
    log(`${primary.name}: initialised a new PostgreSQL ${ctx.bins.version} cluster in ${primary.dataDir}`);
  }
  await configureAndStart(ctx, primary, { kind: 'primary' }, log);

  // 4. the replication role and one slot per replica
  await ensureReplicationObjects(ctx, primary, replicas, secrets);

  // 5. the replicas: rebuild those whose slot was lost, clone the missing ones, start the stopped ones (on separate hosts, all at once)
  const lost = new Set(await replicasWithLostSlots(ctx, primary, secrets));
  const broken: NodeConfig[] = [];
  const replica = async (node: NodeConfig) => {
    if (lost.has(node.name) && states.get(node.name)!.kind === 'ours') {
      if (!cfg.ha.autoReclone) {
        log(`${node.name}: its replication slot on ${primary.name} was lost (${primary.name} removed WAL it still needed); it cannot stream again until it is rebuilt`);
        broken.push(node);
        return;
      }
      log(`${node.name}: its replication slot on ${primary.name} was lost; rebuilding it (ha.auto_reclone)`);
      log(await reclone(ctx, node.name, log));
      return;
    }
    if (states.get(node.name)!.kind === 'empty') {
      const r = await ctx.control(node).clone(primary.name);
      log(`${node.name}: cloned from ${primary.name} (${formatBytes(r.bytes)} in ${(r.ms / 1000).toFixed(1)} s)`);
    }
    await configureAndStart(ctx, node, { kind: 'replica', upstream: primary.name }, log);
  };
  if (cfg.dcs) {
    const failed = (await Promise.allSettled(replicas.map(replica))).find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  } else {
    for (const node of replicas) await replica(node);
  }

  // 6. remember who is primary, then wait until the whole cluster is healthy
  const prev = await ctx.store.read();
  if (!prev || prev.primary !== primary.name) {
    await ctx.store.write({ version: 1, cluster: cfg.cluster, primary: primary.name, timeline: prev?.timeline ?? null, fenced: prev?.fenced ?? [], updatedAt: new Date().toISOString() });
  }
  await waitHealthy(ctx, primary, replicas.filter((r) => !broken.includes(r)), secrets);
  if (broken.length > 0) {
    const names = broken.map((b) => b.name);
    throw new PgmError('cluster.unhealthy', `${names.join(', ')} lost ${names.length === 1 ? 'its' : 'their'} replication slot on ${primary.name} and cannot stream until rebuilt; the rest of the cluster is up.`, {
      hint: `rebuild with ${names.map((n) => `pgmaestro rejoin ${n}`).join(' and ')} (or pgmaestro restore --node), or set ha.auto_reclone: true so that up and the daemon do it.`,
    });
  }
}

/** A replica's data must come from the primary's database system; a primary cannot be re-created under live replicas. */
function checkSameSystem(primary: NodeConfig, replicas: NodeConfig[], states: Map<string, DataDirState>): void {
  const p = states.get(primary.name)!;
  const provisioned = replicas.filter((r) => states.get(r.name)!.kind === 'ours');
  if (p.kind === 'empty' && provisioned.length > 0) {
    throw new PgmError('data_dir.foreign', `the primary ${primary.name} has no data in ${primary.dataDir}, but ${provisioned.map((r) => r.name).join(', ')} still hold this cluster's data.`, {
      hint: `restore ${primary.name}'s data directory, or promote a replica instead of creating a new, unrelated primary.`,
    });
  }
  if (p.kind !== 'ours') return;
  for (const r of provisioned) {
    const s = states.get(r.name)!;
    if (s.kind === 'ours' && s.systemId !== p.systemId) {
      throw new PgmError('data_dir.foreign', `replica ${r.name} holds data of database system ${s.systemId}, but the primary ${primary.name} is system ${p.systemId}.`, {
        hint: `move ${r.dataDir} away so that up clones ${r.name} afresh from ${primary.name}.`,
      });
    }
  }
}

async function configureAndStart(ctx: ClusterContext, node: NodeConfig, role: RoleSpec, log: Log): Promise<void> {
  const control = ctx.control(node);
  // a stopped node gets its files quietly; a running one says what its reload did
  const change = await control.configure(role);
  if (change.outcome === 'reloaded') log(describe(change)!);
  if ((await control.start()) === 'started') log(`${node.name}: started as ${role.kind} on ${node.service}:${node.port}`);
}

/** Creates the replication role (sending only its SCRAM verifier) and a physical slot per replica; returns only once they exist. */
async function ensureReplicationObjects(ctx: ClusterContext, primary: NodeConfig, replicas: NodeConfig[], secrets: Secrets): Promise<void> {
  const role = ctx.cfg.replicationUser;
  await withClient(adminTarget(ctx, primary, secrets), async (c) => {
    await c.query("SET log_statement = 'none'");
    const exists = await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
    if (exists.rowCount === 0) {
      await c.query(`CREATE ROLE ${quoteIdent(role)} WITH LOGIN REPLICATION PASSWORD ${quoteLiteral(scramVerifier(secrets.replicationPassword))}`);
    }
    for (const r of replicas) {
      await c.query(
        'SELECT pg_create_physical_replication_slot($1, true) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)',
        [slotName(r)],
      );
    }
  });
}
