import type { NodeConfig } from '../config/types.js';
import { pgReload, postmasterRunning } from '../postgres/control.js';
import { withClient } from '../postgres/sql.js';
import { changedSettings, currentSettingsFiles, parseSettings, renderNodeFiles, writeNodeFiles, type NodeRole } from './configure.js';
import { adminTarget, currentPrimaryName, findNode, type ClusterContext } from './context.js';
import type { RoleSpec } from './node-control.js';
import type { Secrets } from './secrets.js';
import { checkSettings } from './settings-check.js';

export type Log = (line: string) => void;

/** What a configuration change did on one node. */
export interface NodeChange {
  readonly node: string;
  /** 'unchanged'; 'written' (not running: takes effect when it starts); 'reloaded'. */
  readonly outcome: 'unchanged' | 'written' | 'reloaded';
  /** Changed settings now in effect, as `name = value` ('written': the names of the changed settings). */
  readonly applied: readonly string[];
  /** Changed settings that wait for a restart (PostgreSQL's pending_restart). */
  readonly pending: readonly string[];
  /** Settings PostgreSQL rejected on reload (pg_file_settings.error), with the file. */
  readonly rejected: readonly string[];
}

export interface PlannedRole {
  readonly node: NodeConfig;
  readonly role: RoleSpec;
}

/** The role each node gets now: the current primary, its replicas; fenced nodes are left alone. */
export async function plannedRoles(ctx: ClusterContext, fenced: ReadonlySet<string>): Promise<PlannedRole[]> {
  const primary = findNode(ctx.cfg, await currentPrimaryName(ctx));
  return [
    { node: primary, role: { kind: 'primary' } },
    ...ctx.cfg.nodes.filter((n) => n !== primary && !fenced.has(n.name)).map((n): PlannedRole => ({ node: n, role: { kind: 'replica', upstream: primary.name } })),
  ];
}

/**
 * Checks every node's candidate files with PostgreSQL itself, on the node's
 * own host, before any is written (see settings-check.ts); refuses the whole
 * change on the first value PostgreSQL would not accept.
 */
export async function checkPlanned(ctx: ClusterContext, plans: readonly PlannedRole[]): Promise<void> {
  if (!ctx.cfg.dcs) {
    for (const { node, role } of plans) await ctx.control(node).checkConfig(role);
    return;
  }
  // on separate hosts, all at once; the first refusal (in the plan's order) is the one said
  const results = await Promise.allSettled(plans.map(({ node, role }) => ctx.control(node).checkConfig(role)));
  const refused = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (refused) throw refused.reason;
}

/** On `node`'s host: PostgreSQL reads the files `role` would give it, when their settings differ from the current ones. */
export async function checkNodeFiles(ctx: ClusterContext, node: NodeConfig, role: NodeRole): Promise<void> {
  const files = renderNodeFiles(ctx, node, role);
  if (changedSettings(currentSettingsFiles(node.dataDir), files).length > 0) await checkSettings(ctx, [{ node, files }]);
}

/**
 * On `node`'s host: writes its files for `role`; when it runs and they
 * changed, reloads it and reports, from PostgreSQL, which changed settings
 * took effect, which wait for a restart, and which it rejected.
 */
export async function applyNodeFiles(ctx: ClusterContext, node: NodeConfig, role: NodeRole, secrets: Secrets): Promise<NodeChange> {
  const before = currentSettingsFiles(node.dataDir);
  const none = { node: node.name, applied: [], pending: [], rejected: [] };
  if (!writeNodeFiles(ctx, node, role)) return { ...none, outcome: 'unchanged' };
  const after = currentSettingsFiles(node.dataDir);
  const names = changedSettings(before, after);
  if (!postmasterRunning(node.dataDir)) return { ...none, outcome: 'written', applied: names };
  return reloadAndReport(ctx, node, secrets, names, parseSettings(after));
}

async function reloadAndReport(ctx: ClusterContext, node: NodeConfig, secrets: Secrets, names: string[], wanted: Map<string, string>): Promise<NodeChange> {
  const loadTime = () => withClient(adminTarget(ctx, node, secrets), async (c) => (await c.query<{ t: Date }>('SELECT pg_conf_load_time() AS t')).rows[0].t.getTime());
  const t0 = await loadTime();
  await pgReload(ctx.bins, ctx.user, node.dataDir);
  // a reload is asynchronous: the postmaster re-reads its files when it gets to the signal
  for (const deadline = Date.now() + 10_000; Date.now() < deadline && (await loadTime()) <= t0; ) await new Promise((res) => setTimeout(res, 50));
  const fresh = await withClient(adminTarget(ctx, node, secrets), async (c) => {
    const s = await c.query<{ name: string; value: string; pending: boolean }>('SELECT name, current_setting(name) AS value, pending_restart AS pending FROM pg_settings WHERE name = ANY($1)', [names]);
    const e = await c.query<{ name: string | null; error: string; sourcefile: string }>('SELECT name, error, sourcefile FROM pg_file_settings WHERE error IS NOT NULL');
    return { settings: s.rows, errors: e.rows };
  });
  const applied: string[] = [];
  const pending: string[] = [];
  for (const s of fresh.settings) {
    if (s.pending) pending.push(`${s.name} = ${unquote(wanted.get(s.name))} (now ${s.value})`);
    else applied.push(`${s.name} = ${s.value}`);
  }
  for (const n of names) if (!fresh.settings.some((s) => s.name === n)) applied.push(`${n} = ${unquote(wanted.get(n))}`);
  const rejected = fresh.errors.map((e) => `${e.name ?? '?'}: ${e.error} (${e.sourcefile})`);
  return { node: node.name, outcome: 'reloaded', applied, pending, rejected };
}

function unquote(v: string | undefined): string {
  if (v === undefined) return 'its default';
  return v.startsWith("'") && v.endsWith("'") ? v.slice(1, -1).replace(/''/g, "'") : v;
}

/**
 * One sentence per node: `node1: configuration changed, reloaded: work_mem = 77MB applied; shared_buffers = 256MB (now 128MB) waits for a restart …`,
 * or `node2: configuration written (work_mem); it takes effect when the node starts`; null when there is nothing to say.
 */
export function describe(ch: NodeChange): string | null {
  if (ch.outcome === 'unchanged') return null;
  if (ch.outcome === 'written') return ch.applied.length > 0 ? `${ch.node}: configuration written (${ch.applied.join(', ')}); it takes effect when the node starts` : null;
  const parts: string[] = [];
  if (ch.applied.length > 0) parts.push(`${ch.applied.join(', ')} applied`);
  if (ch.pending.length > 0) parts.push(`${ch.pending.join(', ')} ${ch.pending.length === 1 ? 'waits' : 'wait'} for a restart (pgmaestro restart --pending)`);
  if (ch.rejected.length > 0) parts.push(`PostgreSQL rejected ${ch.rejected.join('; ')}`);
  return `${ch.node}: configuration changed, reloaded: ${parts.length > 0 ? parts.join('; ') : 'no setting in effect on this node changed'}`;
}

/** `pgmaestro reload`: check every node's candidate configuration with PostgreSQL, then write and reload it, saying what each change needs. */
export async function reloadCluster(ctx: ClusterContext, log: Log): Promise<NodeChange[]> {
  const plans = await plannedRoles(ctx, new Set((await ctx.store.read())?.fenced ?? []));
  await checkPlanned(ctx, plans);
  const out: NodeChange[] = [];
  for (const { node, role } of plans) {
    const change = await ctx.control(node).configure(role);
    const line = describe(change);
    if (line !== null) log(line);
    out.push(change);
  }
  if (out.every((c) => c.outcome === 'unchanged')) log('configuration unchanged on every node');
  return out;
}
