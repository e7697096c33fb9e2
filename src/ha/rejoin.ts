import fs from 'node:fs';
import { PgmError } from '../errors.js';
import { pgStop, postmasterRunning } from '../postgres/control.js';
import { run } from '../postgres/exec.js';
import { firstCause, keepOutput } from '../postgres/tool-failure.js';
import { cloneReplica } from '../cluster/clone.js';
import { writeNodeFiles } from '../cluster/configure.js';
import { adminTarget, currentPrimaryName, findNode, type ClusterContext } from '../cluster/context.js';
import { withClient } from '../postgres/sql.js';
import { readMarker, writeMarker } from '../cluster/datadir.js';
import { startNode } from '../cluster/lifecycle.js';
import type { Secrets } from '../cluster/secrets.js';
import { nextState } from '../cluster/state.js';
import { waitHealthy } from '../cluster/health.js';
import { readSystemIdentifier } from '../postgres/control.js';
import { ensureSlots } from './promote.js';

/**
 * `pgmaestro rejoin NODE`: rebuild a node (typically an old primary) as a
 * replica of the current primary — pg_rewind where the installation has it
 * (data checksums are always on), else a fresh clone with pgmaestro's own
 * BASE_BACKUP client, the old data kept aside. Then it is unfenced.
 */
export async function rejoin(ctx: ClusterContext, secrets: Secrets, nodeName: string, log: (line: string) => void): Promise<string> {
  const node = findNode(ctx.cfg, nodeName);
  const primary = findNode(ctx.cfg, currentPrimaryName(ctx));
  if (node.name === primary.name) {
    throw new PgmError('usage', `${node.name} is the current primary; only another node can rejoin it.`, { hint: 'name a replica or a fenced old primary.' });
  }

  // 1. stop it, whatever it is doing
  if (postmasterRunning(node.dataDir)) await pgStop(ctx.bins, ctx.user, node.dataDir, 'fast', 60);
  await ensureSlots(ctx, primary, secrets);

  // 2. rewind, or clone afresh
  let how: string;
  const rewind = ctx.bins.tool('pg_rewind');
  const rewound = rewind && fs.existsSync(node.dataDir) ? await tryRewind(ctx, secrets, rewind, node.dataDir, primary, log) : false;
  if (rewound) {
    how = 'pg_rewind';
    writeMarker(node.dataDir, ctx.cfg, node, readSystemIdentifier(node.dataDir)!, ctx.user);
  } else {
    const aside = `${node.dataDir}.before-rejoin-${new Date().toISOString().replace(/[-:.]/g, '')}`;
    if (fs.existsSync(node.dataDir)) {
      fs.renameSync(node.dataDir, aside);
      if (fs.existsSync(`${node.dataDir}_tablespaces`)) fs.renameSync(`${node.dataDir}_tablespaces`, `${aside}_tablespaces`);
      log(`${node.name}: old data kept in ${aside}`);
    }
    await cloneReplica(ctx, node, primary, secrets, log);
    how = 'a fresh clone';
  }
  if (readMarker(node.dataDir)?.node !== node.name) writeMarker(node.dataDir, ctx.cfg, node, readSystemIdentifier(node.dataDir)!, ctx.user);

  // 3. start it as a replica of the primary and wait until it streams
  writeNodeFiles(ctx, node, { kind: 'replica', upstream: primary });
  await startNode(ctx, node);
  await waitHealthy(ctx, primary, [node], secrets, 120_000);
  const st = ctx.store.read();
  if (st) ctx.store.write(nextState(st, { fenced: st.fenced.filter((n) => n !== node.name) }));
  return `${node.name} rejoined as a replica of ${primary.name} through ${how}`;
}

async function tryRewind(ctx: ClusterContext, secrets: Secrets, tool: string, dataDir: string, primary: ReturnType<typeof findNode>, log: (line: string) => void): Promise<boolean> {
  // pg_rewind reads the source's timeline from its control file, which a
  // fresh promotion updates only at its next checkpoint.
  await withClient(adminTarget(ctx, primary, secrets), (c) => c.query('CHECKPOINT'));
  const source = `host=${primary.admin} port=${primary.port} user=${ctx.cfg.superuser} dbname=postgres`;
  const r = await run(tool, ['--target-pgdata', dataDir, '--source-server', source], {
    user: ctx.user,
    env: { PGPASSFILE: ctx.paths.superuserPassfile },
    timeoutMs: 3600_000,
  });
  if (r.code === 0) {
    log(`pg_rewind: ${(r.stdout + r.stderr).trim().split('\n').slice(-2).join(' / ')}`);
    return true;
  }
  const kept = keepOutput(ctx.paths.logsDir, 'pg_rewind', r.stderr + r.stdout);
  log(`pg_rewind could not rewind ${dataDir} (${firstCause(r.stderr + r.stdout)}${kept ? `; full output in ${kept}` : ''}); cloning afresh instead`);
  return false;
}
