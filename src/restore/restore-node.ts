import fs from 'node:fs';
import path from 'node:path';
import { writeNodeFiles } from '../cluster/configure.js';
import { currentPrimaryName, findNode, requireSecrets, type ClusterContext } from '../cluster/context.js';
import { writeMarker } from '../cluster/datadir.js';
import { waitHealthy } from '../cluster/health.js';
import { PgmError } from '../errors.js';
import { postmasterRunning, readSystemIdentifier } from '../postgres/control.js';
import type { Repository } from '../backup/repository.js';
import { writeFileAtomic } from '../util/fsx.js';
import { materialize } from './materialize.js';
import { planRestore, type RestoreTarget } from './plan.js';
import { configureRecovery, recoverySettings } from './recovery.js';
import { archiveReach, startRestored } from './restore.js';

/**
 * `restore --node N`: rebuild a cluster node from the repository instead of
 * cloning it from the primary (which spares the primary, or is the only way
 * when it is gone). A replica is restored to the newest backup and catches up
 * as a standby of the current primary, reading the archive first and then
 * streaming. The primary can be rebuilt only while it is stopped: it recovers
 * to the target and is promoted. The node's old data, if any, is kept aside.
 */
export async function restoreNode(ctx: ClusterContext, repo: Repository, nodeName: string, target: RestoreTarget, log: (line: string) => void): Promise<string> {
  const node = findNode(ctx.cfg, nodeName);
  const primary = findNode(ctx.cfg, await currentPrimaryName(ctx));
  const isPrimary = node.name === primary.name;
  if (isPrimary && postmasterRunning(node.dataDir)) {
    throw new PgmError('usage', `${node.name} is the running primary; rebuilding it from the repository would discard its newer data.`, {
      hint: `restore a replica, or into --target-dir to look at old data; to rebuild the primary, stop it first (pgmaestro down).`,
    });
  }
  if (!isPrimary && target.kind !== 'latest') {
    throw new PgmError('usage', `a replica is rebuilt to the end of the archive and then follows ${primary.name}; a recovery target makes no sense for it.`, { hint: 'drop the target, or restore into --target-dir.' });
  }

  // 1. plan, then move the node's old data aside
  const plan = planRestore(repo.list(), archiveReach(repo), target);
  log(`${node.name}: ${plan.summary}`);
  await ctx.control(node).stop('fast', 120);
  if (fs.existsSync(node.dataDir)) {
    const aside = `${node.dataDir}.before-restore-${new Date().toISOString().replace(/[-:.]/g, '')}`;
    fs.renameSync(node.dataDir, aside);
    if (fs.existsSync(`${node.dataDir}_tablespaces`)) fs.renameSync(`${node.dataDir}_tablespaces`, `${aside}_tablespaces`);
    log(`${node.name}: old data kept in ${aside}`);
  }

  // 2. the data directory from the chain, with this node's files and identity
  await materialize(repo, plan.chain, node.dataDir, ctx.user);
  const settings = recoverySettings(isPrimary ? target : { kind: 'latest' }, repo.restoreCommand());
  configureRecovery(node.dataDir, { port: node.port, settings, owner: ctx.user, standalone: false });
  writeNodeFiles(ctx, node, isPrimary ? { kind: 'primary' } : { kind: 'replica', upstream: primary });
  if (isPrimary) writeFileAtomic(path.join(node.dataDir, 'recovery.signal'), '', 0o600, ctx.user);
  writeMarker(node.dataDir, ctx.cfg, node, readSystemIdentifier(node.dataDir)!, ctx.user);

  // 3. start it: a replica until it streams, the primary until it is promoted
  const secrets = requireSecrets(ctx);
  if (isPrimary) {
    await startRestored(ctx, node.dataDir, node.port, 3600_000, node.admin);
  } else {
    await ctx.control(node).start();
    await waitHealthy(ctx, primary, [node], secrets, 600_000);
  }
  return `${node.name} rebuilt from ${plan.chain.map((b) => b.id).join(' + ')}${isPrimary ? ' and promoted' : ` and streams from ${primary.name}`}`;
}
