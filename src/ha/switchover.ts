import { PgmError } from '../errors.js';
import { pgStop, readControlCheckpoint } from '../postgres/control.js';
import { formatLsn } from '../postgres/lsn.js';
import { withClient } from '../postgres/sql.js';
import { writeNodeFiles } from '../cluster/configure.js';
import { adminTarget, currentPrimaryName, findNode, type ClusterContext } from '../cluster/context.js';
import type { NodeConfig } from '../config/types.js';
import { startNode } from '../cluster/lifecycle.js';
import type { Secrets } from '../cluster/secrets.js';
import { nextState } from '../cluster/state.js';
import { waitHealthy } from '../cluster/health.js';
import { failover, type PrimaryHooks } from './failover.js';
import { holdNewConnections, releaseHold } from './hold.js';

/**
 * `pgmaestro switchover --to NODE`: planned, nothing lost. Stop writes on the
 * old primary cleanly (its shutdown checkpoint reaches the replicas), wait
 * until the candidate has replayed past it, promote it, and bring the old
 * primary back as its replica — no rewind needed, as it wrote nothing the
 * candidate lacks.
 */
export async function switchover(ctx: ClusterContext, secrets: Secrets, to: string, hooks: PrimaryHooks, log: (line: string) => void): Promise<string> {
  const old = findNode(ctx.cfg, currentPrimaryName(ctx));
  const candidate = findNode(ctx.cfg, to);

  // 1. stop writes: hold new connections (recorded, so the endpoints see it), shut the old primary down cleanly
  holdNewConnections(ctx, `switchover: stopping ${old.name}`);
  try {
    await hooks.setPrimary(null, `switchover: stopping ${old.name}`);
    await pgStop(ctx.bins, ctx.user, old.dataDir, 'fast', 120);
    await waitReplayed(ctx, secrets, old, candidate);
  } catch (err) {
    releaseHold(ctx);
    await hooks.setPrimary(old.name, `switchover to ${candidate.name} abandoned`);
    throw err;
  }

  // 3. promote (the old primary is already stopped: the fence is a formality)
  const sentence = await failover(ctx, secrets, { kind: 'switchover', from: old.name, to: candidate.name, reason: `planned switchover from ${old.name}` }, hooks, log);

  // 4. the old primary follows the new one
  writeNodeFiles(ctx, old, { kind: 'replica', upstream: candidate });
  await startNode(ctx, old);
  const st = ctx.store.read()!;
  ctx.store.write(nextState(st, { fenced: st.fenced.filter((n) => n !== old.name) }));
  await waitHealthy(ctx, candidate, ctx.cfg.nodes.filter((n) => n.name !== candidate.name), secrets, 120_000);
  return `${sentence.replace(/; \S+ is fenced until it rejoins$/, '')}; ${old.name} follows it as a replica`;
}

/** Waits until the candidate has replayed everything up to and past the old primary's shutdown checkpoint. */
async function waitReplayed(ctx: ClusterContext, secrets: Secrets, old: NodeConfig, candidate: NodeConfig): Promise<void> {
  const shutdown = readControlCheckpoint(old.dataDir).checkpoint;
  await withClient(adminTarget(ctx, candidate, secrets), async (c) => {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const r = await c.query<{ ok: boolean }>('SELECT pg_last_wal_replay_lsn() > $1::pg_lsn AS ok', [formatLsn(shutdown)]);
      if (r.rows[0].ok) return;
      await new Promise((res) => setTimeout(res, 50));
    }
    throw new PgmError('cluster.unhealthy', `${candidate.name} did not replay ${old.name}'s shutdown checkpoint at ${formatLsn(shutdown)} within 60 s.`, {
      hint: `${old.name} is stopped; start it again with pgmaestro up, or force with pgmaestro failover --to ${candidate.name}.`,
    });
  });
}
