import fs from 'node:fs';
import path from 'node:path';
import type { NodeConfig } from '../config/types.js';
import { slotName } from '../config/render.js';
import { PgmError } from '../errors.js';
import { initdb, postmasterRunning, readSystemIdentifier } from '../postgres/control.js';
import { applyNodeFiles, checkPlanned } from './reload.js';
import { ensureOwnedDir } from '../postgres/osuser.js';
import { scramVerifier } from '../postgres/scram.js';
import { quoteIdent, quoteLiteral, withClient } from '../postgres/sql.js';
import { formatBytes } from '../util/format.js';
import { fsyncDir, writeFileAtomic } from '../util/fsx.js';
import { cloneReplica } from './clone.js';
import { writeNodeFiles, type NodeRole } from './configure.js';
import { adminTarget, assertPathsReachable, currentPrimaryName, findNode, type ClusterContext } from './context.js';
import { inspectDataDir, writeMarker, type DataDirState } from './datadir.js';
import { startNode } from './lifecycle.js';
import { assertPortFree } from './ports.js';
import { partialDir } from './paths.js';
import { ensureSecrets, type Secrets } from './secrets.js';
import { waitHealthy } from './health.js';

export type Log = (line: string) => void;

/**
 * `pgmaestro up`: provision what is missing, start what is stopped, and return
 * once the primary accepts writes and every replica streams. Idempotent: on a
 * running cluster it changes nothing. Every check that can refuse runs before
 * anything is written, so bad input never leaves damage behind.
 */
export async function up(ctx: ClusterContext, log: Log): Promise<void> {
  const { cfg } = ctx;
  const primary = findNode(cfg, currentPrimaryName(ctx));
  const fenced = new Set(ctx.store.read()?.fenced ?? []);
  const replicas = cfg.nodes.filter((n) => n !== primary && !fenced.has(n.name));
  for (const name of fenced) log(`${name}: fenced since a failover; it stays stopped until \`pgmaestro rejoin ${name}\``);

  // 1. check every path and every node's directory before touching anything
  assertPathsReachable(ctx);
  const states = new Map<string, DataDirState>();
  for (const node of [primary, ...replicas]) {
    states.set(node.name, inspectDataDir(cfg, node));
    if (!postmasterRunning(node.dataDir) && !ctx.lab) await assertPortFree(node, cfg.file);
  }
  checkSameSystem(primary, replicas, states);
  // PostgreSQL itself reads every node's new configuration before any file is written
  await checkPlanned(ctx, [{ node: primary, role: { kind: 'primary' } }, ...replicas.map((n) => ({ node: n, role: { kind: 'replica', upstream: primary } as NodeRole }))]);

  // 2. secrets, generated once
  const secrets = ensureSecrets(cfg, ctx.user);

  // 3. the primary: create it if it has no data, apply the rendered files, start it
  if (states.get(primary.name)!.kind === 'empty') {
    await initPrimary(ctx, primary, secrets);
    log(`${primary.name}: initialised a new PostgreSQL ${ctx.bins.version} cluster in ${primary.dataDir}`);
  }
  await configureAndStart(ctx, primary, { kind: 'primary' }, secrets, log);

  // 4. the replication role and one slot per replica
  await ensureReplicationObjects(ctx, primary, replicas, secrets);

  // 5. the replicas: clone the missing ones, start the stopped ones
  for (const node of replicas) {
    if (states.get(node.name)!.kind === 'empty') {
      const r = await cloneReplica(ctx, node, primary, secrets, log);
      log(`${node.name}: cloned from ${primary.name} (${formatBytes(r.bytes)} in ${(r.ms / 1000).toFixed(1)} s)`);
    }
    await configureAndStart(ctx, node, { kind: 'replica', upstream: primary }, secrets, log);
  }

  // 6. remember who is primary, then wait until the whole cluster is healthy
  const prev = ctx.store.read();
  if (!prev || prev.primary !== primary.name) {
    ctx.store.write({ version: 1, cluster: cfg.cluster, primary: primary.name, timeline: prev?.timeline ?? null, fenced: prev?.fenced ?? [], updatedAt: new Date().toISOString() });
  }
  await waitHealthy(ctx, primary, replicas, secrets);
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

async function initPrimary(ctx: ClusterContext, node: NodeConfig, secrets: Secrets): Promise<void> {
  const partial = partialDir(node.dataDir);
  fs.rmSync(partial, { recursive: true, force: true }); // left by an interrupted earlier run
  fs.mkdirSync(path.dirname(node.dataDir), { recursive: true });
  ensureOwnedDir(partial, ctx.user, 0o700);
  const pwfile = path.join(ctx.paths.secretsDir, `.initdb-${process.pid}.pw`);
  writeFileAtomic(pwfile, secrets.superuserPassword + '\n', 0o600, ctx.user);
  try {
    await initdb(ctx.bins, ctx.user, partial, { superuser: ctx.cfg.superuser, pwfile, logsDir: ctx.paths.logsDir });
  } finally {
    fs.rmSync(pwfile, { force: true });
  }
  writeNodeFiles(ctx, node, { kind: 'primary' }, partial);
  writeMarker(partial, ctx.cfg, node, readSystemIdentifier(partial)!, ctx.user);
  moveIntoPlace(partial, node.dataDir);
}

/** Renames a completed partial directory onto the (missing or empty) data directory. */
export function moveIntoPlace(partial: string, dataDir: string): void {
  if (fs.existsSync(dataDir)) fs.rmdirSync(dataDir); // only ever empty here: inspectDataDir said so
  fs.renameSync(partial, dataDir);
  fsyncDir(path.dirname(dataDir));
}

async function configureAndStart(ctx: ClusterContext, node: NodeConfig, role: NodeRole, secrets: Secrets, log: Log): Promise<void> {
  const running = postmasterRunning(node.dataDir);
  if (running) await applyNodeFiles(ctx, node, role, secrets, log);
  else writeNodeFiles(ctx, node, role);
  if ((await startNode(ctx, node)) === 'started') log(`${node.name}: started as ${role.kind} on ${node.service}:${node.port}`);
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
