import { PgmError } from '../errors.js';
import { findNode, requireSecrets, type ClusterContext } from '../cluster/context.js';
import { checkManualFailover, checkSwitchoverTarget } from './election.js';
import { failover, type PrimaryHooks } from './failover.js';
import { snapshot } from './monitor.js';
import { rejoin } from './rejoin.js';
import { switchover } from './switchover.js';

/**
 * The operator's commands, checked against a fresh snapshot by the same pure
 * rules the monitor uses, then carried out. A refusal changes nothing.
 */
export async function switchoverCommand(ctx: ClusterContext, to: string, hooks: PrimaryHooks, log: (s: string) => void): Promise<string> {
  const snap = await snapshot(ctx);
  const check = checkSwitchoverTarget(snap.nodes, snap.policy, snap.primary, to);
  if (!check.ok) throw new PgmError('usage', `${check.sentence}.`, { hint: `${check.hint}.` });
  return switchover(ctx, requireSecrets(ctx), to, hooks, log);
}

export async function failoverCommand(ctx: ClusterContext, to: string | null, hooks: PrimaryHooks, log: (s: string) => void): Promise<string> {
  const snap = await snapshot(ctx);
  const check = checkManualFailover(snap.nodes, snap.policy, snap.primary, to);
  if (!check.ok) throw new PgmError('usage', `${check.sentence}.`, { hint: `${check.hint}.` });
  return failover(ctx, requireSecrets(ctx), { kind: 'failover', from: snap.primary, to: check.target.name, reason: `forced by the operator (${check.sentence})`, elected: to === null }, hooks, log);
}

export async function rejoinCommand(ctx: ClusterContext, node: string, log: (s: string) => void): Promise<string> {
  findNode(ctx.cfg, node);
  return rejoin(ctx, requireSecrets(ctx), node, log);
}
