import { PgmError } from '../errors.js';
import { formatLsn } from '../postgres/lsn.js';
import { withClient } from '../postgres/sql.js';
import { adminTarget, currentPrimaryName, findNode, type ClusterContext } from '../cluster/context.js';
import type { NodeConfig } from '../config/types.js';
import type { Secrets } from '../cluster/secrets.js';
import { nextState } from '../cluster/state.js';
import { waitHealthy } from '../cluster/health.js';
import { failover, type PrimaryHooks } from './failover.js';
import { afterFollow } from '../logical/ha-hooks.js';
import { holdNewConnections, releaseHold } from './hold.js';

/**
 * `pgmaestro switchover --to NODE`: planned, nothing lost. Stop writes on the
 * old primary cleanly (its shutdown checkpoint reaches the replicas), wait
 * until the candidate has replayed past it, promote it, and bring the old
 * primary back as its replica — no rewind needed, as it wrote nothing the
 * candidate lacks.
 */
export async function switchover(ctx: ClusterContext, secrets: Secrets, to: string, hooks: PrimaryHooks, log: (line: string) => void): Promise<string> {
  const old = findNode(ctx.cfg, await currentPrimaryName(ctx));
  const candidate = findNode(ctx.cfg, to);

  // 1. stop writes: hold new connections (recorded, so the endpoints see it), shut the old primary down cleanly
  await holdNewConnections(ctx, `switchover: stopping ${old.name}`);
  try {
    await hooks.setPrimary(null, `switchover: stopping ${old.name}`);
    await ctx.control(old).stop('fast', 120);
    // 2. wait until the candidate has replayed everything up to and past the shutdown checkpoint
    await waitReplayed(ctx, secrets, old, candidate);
  } catch (err) {
    await releaseHold(ctx);
    await hooks.setPrimary(old.name, `switchover to ${candidate.name} abandoned`);
    throw err;
  }

  // 3. promote (the old primary is already stopped: the fence is a formality)
  const sentence = await failover(ctx, secrets, { kind: 'switchover', from: old.name, to: candidate.name, reason: `planned switchover from ${old.name}` }, hooks, log);

  // 4. the old primary follows the new one (unfenced before it streams: see rejoin)
  await ctx.control(old).configure({ kind: 'replica', upstream: candidate.name });
  await ctx.store.update(ctx.group, (st) => (st ? nextState(st, { fenced: st.fenced.filter((n) => n !== old.name) }) : null));
  await ctx.control(old).start();
  await waitHealthy(ctx, candidate, ctx.cfg.nodes.filter((n) => n.name !== candidate.name), secrets, 120_000);
  for (const line of await afterFollow(ctx, secrets)) log(line);
  return `${sentence.replace(/; \S+ is fenced until it rejoins$/, '')}; ${old.name} follows it as a replica`;
}

/** Waits until the candidate has replayed everything up to and past the old primary's shutdown checkpoint. */
async function waitReplayed(ctx: ClusterContext, secrets: Secrets, old: NodeConfig, candidate: NodeConfig): Promise<void> {
  const shutdown = (await ctx.control(old).checkpoint()).checkpoint;
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
