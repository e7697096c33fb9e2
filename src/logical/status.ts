import type pg from 'pg';
import { adminTarget, currentPrimaryName, findNode, type ClusterContext } from '../cluster/context.js';
import { readSecrets, type Secrets } from '../cluster/secrets.js';
import type { SubscriptionConfig } from '../config/types.js';
import { postmasterPid } from '../postgres/control.js';
import { withClient } from '../postgres/sql.js';
import { lsnDiff, parseLsn } from '../postgres/lsn.js';
import { formatBytes } from '../util/format.js';
import { qualified } from './catalog-types.js';
import { readCatalog, resolveScope, tableOids } from './catalog.js';
import { lastError } from './copy-wait.js';
import { publishedShape } from './ddl.js';
import { describeDrift, tableDrift } from './drift.js';
import { queryNodes } from './query-node.js';
import { onSubscriber, subscriberOf, targetLabel } from './subscriber.js';
import { subscribedTables, tableState } from './subscriptions.js';

/**
 * `logical status`: per subscription, each table's state, the lag in bytes
 * and seconds, apply errors and conflicts, the WAL its slot holds back on
 * the primary, whether the standbys hold a synchronised copy of it (so it
 * survives a failover), drift between publisher and subscriber, and — in
 * one sentence each — what is wrong and what to do. Observes only; a node
 * that cannot be reached is reported, never raised.
 */

export type SubscriptionState = 'streaming' | 'copying' | 'catching up' | 'stopped' | 'disabled' | 'slot missing' | 'absent' | 'unreachable';

export interface SubscriptionStatus {
  readonly name: string;
  readonly publication: string;
  readonly subscriber: string;
  readonly database: string;
  readonly state: SubscriptionState;
  readonly worker_pid: number | null;
  readonly tables: readonly { readonly name: string; readonly state: string }[];
  readonly lag_bytes: number | null;
  readonly lag_seconds: number | null;
  readonly apply_errors: number | null;
  readonly sync_errors: number | null;
  /** PostgreSQL 18's conflict counters, by kind (insert_exists, update_missing, …); empty before 18. */
  readonly conflicts: Readonly<Record<string, number>>;
  readonly last_error: string | null;
  readonly slot: {
    readonly name: string;
    readonly exists: boolean;
    readonly active: boolean;
    readonly retained_bytes: number | null;
    readonly wal_status: string | null;
    readonly failover: boolean | null;
    /** Standbys holding a synchronised, usable copy (PostgreSQL 17+). */
    readonly synced_on: readonly string[];
  };
  readonly drift: readonly string[];
  /** What is wrong, with what to do, one sentence each. */
  readonly problems: readonly string[];
}

export interface LogicalStatus {
  readonly primary: string;
  readonly slot_warn: string;
  readonly publications: readonly { readonly name: string; readonly database: string; readonly tables: number | null; readonly exists: boolean }[];
  readonly subscriptions: readonly SubscriptionStatus[];
  readonly query_nodes: readonly { readonly name: string; readonly address: string; readonly pid: number | null; readonly indexes: readonly { readonly name: string; readonly present: boolean }[] }[];
}

interface PublisherView {
  readonly lsn: bigint;
  readonly slots: Map<string, { active: boolean; confirmed: string | null; retained: number | null; wal_status: string | null; failover: boolean | null }>;
  readonly lag: Map<string, number | null>;
  readonly publications: Map<string, number>;
}

/** The whole picture; `full` adds drift (it reads both catalogs: for the command, not for the console's frequent looks). */
export async function logicalStatus(ctx: ClusterContext, opts: { full: boolean } = { full: true }): Promise<LogicalStatus> {
  const lg = ctx.cfg.logical!;
  const secrets = readSecrets(ctx.cfg);
  const primary = findNode(ctx.cfg, await currentPrimaryName(ctx));
  const publisher = secrets ? await observePublisher(ctx, secrets, primary.name).catch(() => null) : null;
  const synced = secrets ? await syncedCopies(ctx, secrets, primary.name) : new Map<string, string[]>();
  const subscriptions: SubscriptionStatus[] = [];
  for (const s of lg.subscriptions) subscriptions.push(await oneSubscription(ctx, secrets, s, publisher, synced, primary.name, opts.full));
  const query_nodes = [];
  for (const n of queryNodes(ctx)) {
    const present = secrets ? await presentIndexes(ctx, secrets, n.name).catch(() => new Set<string>()) : new Set<string>();
    query_nodes.push({ name: n.name, address: `${n.service}:${n.port}`, pid: postmasterPid(n.dataDir), indexes: n.indexes.map((i) => ({ name: `${i.schema}.${i.name}`, present: present.has(`${i.database}/${i.schema}.${i.name}`) })) });
  }
  return {
    primary: primary.name,
    slot_warn: lg.slotWarn,
    publications: lg.publications.map((p) => ({ name: p.name, database: p.database, tables: publisher?.publications.get(`${p.database}/${p.name}`) ?? null, exists: publisher?.publications.has(`${p.database}/${p.name}`) ?? false })),
    subscriptions,
    query_nodes,
  };
}

async function observePublisher(ctx: ClusterContext, secrets: Secrets, primary: string): Promise<PublisherView> {
  const node = findNode(ctx.cfg, primary);
  const major = ctx.bins.major;
  const base = await withClient(adminTarget(ctx, node, secrets), async (c) => {
    const w = await c.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
    const s = await c.query<{ slot_name: string; active: boolean; confirmed: string | null; retained: string | null; wal_status: string | null; failover: boolean | null }>(
      `SELECT slot_name, active, confirmed_flush_lsn::text AS confirmed, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint::text AS retained, wal_status,
              ${major >= 17 ? 'failover' : 'NULL::bool AS failover'} FROM pg_replication_slots WHERE slot_type = 'logical'`,
    );
    const r = await c.query<{ application_name: string; lag: number | null }>('SELECT application_name, EXTRACT(epoch FROM replay_lag)::float8 AS lag FROM pg_stat_replication');
    return {
      lsn: parseLsn(w.rows[0].lsn),
      slots: new Map(s.rows.map((x) => [x.slot_name, { active: x.active, confirmed: x.confirmed, retained: x.retained === null ? null : Number(x.retained), wal_status: x.wal_status, failover: x.failover }])),
      lag: new Map(r.rows.map((x) => [x.application_name, x.lag])),
    };
  }, 3000);
  const publications = new Map<string, number>();
  for (const db of [...new Set(ctx.cfg.logical!.publications.map((p) => p.database))]) {
    await withClient({ ...adminTarget(ctx, node, secrets), database: db }, async (c) => {
      const r = await c.query<{ pubname: string; n: number }>('SELECT p.pubname, (SELECT count(*) FROM pg_publication_tables t WHERE t.pubname = p.pubname)::int AS n FROM pg_publication p');
      for (const x of r.rows) publications.set(`${db}/${x.pubname}`, x.n);
    }, 3000).catch(() => undefined);
  }
  return { ...base, publications };
}

/** Per slot name, the standbys that hold a synchronised, usable copy (17+). */
async function syncedCopies(ctx: ClusterContext, secrets: Secrets, primary: string): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  if (ctx.bins.major < 17) return out;
  for (const n of ctx.cfg.nodes.filter((x) => x.name !== primary)) {
    const rows = await withClient(adminTarget(ctx, n, secrets), (c) => c.query<{ slot_name: string }>("SELECT slot_name FROM pg_replication_slots WHERE slot_type = 'logical' AND synced AND NOT temporary AND invalidation_reason IS NULL"), 2000).catch(() => null);
    for (const r of rows?.rows ?? []) out.set(r.slot_name, [...(out.get(r.slot_name) ?? []), n.name]);
  }
  return out;
}

async function oneSubscription(ctx: ClusterContext, secrets: Secrets | null, s: SubscriptionConfig, pub: PublisherView | null, synced: Map<string, string[]>, primary: string, full: boolean): Promise<SubscriptionStatus> {
  const problems: string[] = [];
  const slotRow = pub?.slots.get(s.name);
  const slot = {
    name: s.name,
    exists: slotRow !== undefined,
    active: slotRow?.active ?? false,
    retained_bytes: slotRow?.retained ?? null,
    wal_status: slotRow?.wal_status ?? null,
    failover: slotRow?.failover ?? null,
    synced_on: synced.get(s.name) ?? [],
  };
  const label = targetLabel(s);
  const base = { name: s.name, publication: s.publication, subscriber: label, database: s.database, slot };
  const empty = { worker_pid: null, tables: [], lag_bytes: null, lag_seconds: null, apply_errors: null, sync_errors: null, conflicts: {}, last_error: null, drift: [] };
  if (!secrets) return { ...base, ...empty, state: 'unreachable', problems: ['the cluster was never provisioned: run pgmaestro up'] };
  const sub = subscriberOf(ctx, secrets, s);
  let seen;
  try {
    seen = await onSubscriber(sub, s.database, (c) => readSubscriber(c, s.name), 3000);
  } catch (err) {
    return { ...base, ...empty, state: 'unreachable', problems: [`${label} cannot be reached (${(err as Error).message.replace(/\.$/, '')}): nothing is applied there meanwhile, and the slot on ${primary} holds WAL for it`] };
  }
  if (!seen) return { ...base, ...empty, state: 'absent', problems: [`subscription ${s.name} does not exist on ${label}: run pgmaestro logical apply`] };
  const tables = [...seen.tables.entries()].map(([name, letter]) => ({ name, state: tableState(letter) })).sort((a, b) => a.name.localeCompare(b.name));
  const lagBytes = pub && slotRow?.confirmed ? Math.max(0, Number(lsnDiff(pub.lsn, parseLsn(slotRow.confirmed)))) : null;
  const lagSeconds = lagBytes === 0 ? 0 : (pub?.lag.get(s.name) ?? null);
  const lastErr = sub.node && (seen.pid === null || (seen.applyErrors ?? 0) + (seen.syncErrors ?? 0) > 0) ? lastError(sub.node) || null : null;

  let state: SubscriptionState = tables.some((t) => t.state === 'copying') ? 'copying' : tables.some((t) => t.state === 'catching up') ? 'catching up' : 'streaming';
  if (!seen.enabled) state = 'disabled';
  else if (pub && !slot.exists) state = 'slot missing';
  else if (seen.pid === null) state = 'stopped';

  if (state === 'slot missing') {
    problems.push(
      ctx.bins.major < 17
        ? `its slot ${s.name} does not exist on the primary ${primary}: after a failover or switchover on PostgreSQL ${ctx.bins.major}, which has no failover slots, the slot stays behind on the old primary; rows written since cannot reach ${label} — run pgmaestro logical resync ${s.name} to copy its tables afresh`
        : `its slot ${s.name} does not exist on the primary ${primary} (it was dropped, or not yet synchronised to this node when it was promoted): nothing reaches ${label} — run pgmaestro logical resync ${s.name} to copy its tables afresh`,
    );
  } else if (state === 'stopped') {
    problems.push(`no apply worker runs for it on ${label}${lastErr ? `; its last error: ${lastErr}` : ''} — fix the cause there; it restarts by itself`);
  } else if (state === 'disabled') {
    problems.push(`it is disabled on ${label}; the slot on ${primary} keeps WAL for it meanwhile`);
  }
  const warnBytes = ctx.cfg.logical!.slotWarnBytes;
  if (slot.retained_bytes !== null && slot.retained_bytes > warnBytes) {
    problems.push(`its slot holds ${formatBytes(slot.retained_bytes)} of WAL on ${primary}, above logical.slot_warn (${ctx.cfg.logical!.slotWarn})${slot.active ? '' : ', and nothing streams from it'}: the primary's disk fills until ${label} catches up or the subscription is dropped`);
  }
  if (slot.wal_status === 'lost') problems.push(`its slot lost WAL it needed (max_slot_wal_keep_size): run pgmaestro logical resync ${s.name}`);
  if (ctx.bins.major >= 17 && slot.exists) {
    const fenced = new Set((await ctx.store.read())?.fenced ?? []);
    const candidates = ctx.cfg.nodes.filter((n) => n.name !== primary && !n.nofailover && !fenced.has(n.name)).map((n) => n.name);
    const missing = candidates.filter((n) => !slot.synced_on.includes(n));
    if (missing.length > 0) problems.push(`${missing.join(', ')} ${missing.length === 1 ? 'has' : 'have'} no synchronised copy of its slot yet: a failover to ${missing.length === 1 ? 'it' : 'one of them'} now would stop this subscription`);
  }
  const drift = full && state !== 'slot missing' ? await driftOf(ctx, secrets, s, primary, label, tables.map((t) => t.name)).catch(() => []) : [];
  for (const d of drift) problems.push(`drift: ${d}`);
  return { ...base, state, worker_pid: seen.pid, tables, lag_bytes: lagBytes, lag_seconds: lagSeconds, apply_errors: seen.applyErrors, sync_errors: seen.syncErrors, conflicts: seen.conflicts, last_error: lastErr, drift, problems };
}

async function readSubscriber(c: pg.Client, name: string) {
  const s = await c.query<{ enabled: boolean; pid: number | null }>(
    `SELECT s.subenabled AS enabled, (SELECT pid FROM pg_stat_subscription st WHERE st.subid = s.oid AND st.relid IS NULL LIMIT 1) AS pid
       FROM pg_subscription s WHERE s.subname = $1 AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    [name],
  );
  if (s.rowCount === 0) return null;
  const stats = await c.query<Record<string, string | number | null>>('SELECT * FROM pg_stat_subscription_stats WHERE subname = $1', [name]).catch(() => null);
  const row = stats?.rows[0] ?? {};
  const conflicts: Record<string, number> = {};
  for (const [k, v] of Object.entries(row)) if (k.startsWith('confl_')) conflicts[k.slice('confl_'.length)] = Number(v);
  return {
    enabled: s.rows[0].enabled,
    pid: s.rows[0].pid,
    tables: await subscribedTables(c, name),
    applyErrors: row.apply_error_count === undefined ? null : Number(row.apply_error_count),
    syncErrors: row.sync_error_count === undefined ? null : Number(row.sync_error_count),
    conflicts,
  };
}

/** Drift sentences: tables the publication sends that the subscription does not follow, and columns that differ. */
async function driftOf(ctx: ClusterContext, secrets: Secrets, s: SubscriptionConfig, primaryName: string, label: string, subscribed: readonly string[]): Promise<string[]> {
  const pubDecl = ctx.cfg.logical!.publications.find((p) => p.name === s.publication)!;
  const primary = findNode(ctx.cfg, primaryName);
  const where = `${label} (${s.database})`;
  const snap = await withClient({ ...adminTarget(ctx, primary, secrets), database: pubDecl.database }, async (c) => readCatalog(c, (await resolveScope(c, pubDecl.scope)).oids), 5000);
  const out: string[] = [];
  const leaves = snap.tables.filter((t) => !t.partitioned).map(qualified);
  const notFollowed = leaves.filter((t) => !subscribed.includes(t));
  if (notFollowed.length > 0) out.push(`${notFollowed.join(', ')} ${notFollowed.length === 1 ? 'is' : 'are'} published by ${pubDecl.name} but not followed on ${where}: run pgmaestro logical apply`);
  const sub = subscriberOf(ctx, secrets, s);
  const theirs = await onSubscriber(sub, s.database, async (c) => readCatalog(c, [...(await tableOids(c, snap.tables)).values()]), 5000);
  const changes = pubDecl.publish.includes('update') || pubDecl.publish.includes('delete');
  for (const t of snap.tables) {
    const cols = pubDecl.scope.kind === 'tables' ? (pubDecl.scope.tables.find((x) => x.schema === t.schema && x.name === t.name)?.columns ?? null) : null;
    const mine = theirs.tables.find((x) => x.schema === t.schema && x.name === t.name);
    if (!mine) continue;
    for (const d of tableDrift(publishedShape(t, cols), mine, changes)) out.push(`${describeDrift(d, where, primaryName)}${d.kind === 'missing_column' ? ' (logical apply adds it)' : ' (logical apply refuses to change it)'}`);
  }
  return out;
}

async function presentIndexes(ctx: ClusterContext, secrets: Secrets, node: string): Promise<Set<string>> {
  const n = queryNodes(ctx).find((x) => x.name === node)!;
  const out = new Set<string>();
  for (const db of [...new Set(n.indexes.map((i) => i.database).filter((d): d is string => d !== null))]) {
    const sub = subscriberOf(ctx, secrets, { name: '', publication: '', target: { kind: 'node', node }, database: db, enabled: true });
    const r = await onSubscriber(sub, db, (c) => c.query<{ q: string }>("SELECT n.nspname || '.' || c.relname AS q FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'i'"), 2000).catch(() => null);
    for (const x of r?.rows ?? []) out.add(`${db}/${x.q}`);
  }
  return out;
}

/** A query node as `pgmaestro status` lists it. */
export interface QueryNodeSummary {
  readonly name: string;
  readonly role: 'query';
  readonly host: string;
  readonly port: number;
  readonly data_dir: string;
  readonly pid: number | null;
  readonly dsn: string;
}

/** One flat record per subscription, for `status` and the web console. */
export interface SubscriptionSummary {
  readonly subscription: string;
  readonly publication: string;
  readonly subscriber: string;
  readonly state: SubscriptionState;
  readonly tables: string;
  readonly lag_bytes: number | null;
  readonly lag_seconds: number | null;
  readonly slot_retained_bytes: number | null;
  readonly failover_copies: string;
  readonly errors: number | null;
  readonly conflicts: number;
  readonly problem: string | null;
}

/** What `status` (and so the console) shows of logical replication: cheap (no drift), never throws. */
export async function logicalSummary(ctx: ClusterContext): Promise<{ query_nodes: QueryNodeSummary[]; subscriptions: SubscriptionSummary[] }> {
  const query_nodes = queryNodes(ctx).map((n) => ({ name: n.name, role: 'query' as const, host: n.service, port: n.port, data_dir: n.dataDir, pid: postmasterPid(n.dataDir), dsn: `postgresql://${ctx.cfg.superuser}@${n.service}:${n.port}/postgres` }));
  if ((ctx.cfg.logical?.subscriptions.length ?? 0) === 0) return { query_nodes, subscriptions: [] };
  const st = await logicalStatus(ctx, { full: false }).catch(() => null);
  const subscriptions = (st?.subscriptions ?? []).map((s) => ({
    subscription: s.name,
    publication: s.publication,
    subscriber: `${s.subscriber} (${s.database})`,
    state: s.state,
    tables: `${s.tables.filter((t) => t.state === 'ready').length}/${s.tables.length} ready`,
    lag_bytes: s.lag_bytes,
    lag_seconds: s.lag_seconds,
    slot_retained_bytes: s.slot.retained_bytes,
    failover_copies: s.slot.synced_on.join(', '),
    errors: s.apply_errors === null ? null : s.apply_errors + (s.sync_errors ?? 0),
    conflicts: Object.values(s.conflicts).reduce((a, b) => a + b, 0),
    problem: s.problems[0] ?? null,
  }));
  return { query_nodes, subscriptions };
}
