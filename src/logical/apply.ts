import type pg from 'pg';
import { adminTarget, type ClusterContext } from '../cluster/context.js';
import { checkPlanned, describe, plannedRoles } from '../cluster/reload.js';
import type { Secrets } from '../cluster/secrets.js';
import { PgmError } from '../errors.js';
import { quoteIdent, withClient } from '../postgres/sql.js';
import type { Refusal } from './ddl.js';
import { describeIndexStep, indexStatements } from './indexes.js';
import { planLogical, type LogicalPlan, type SubscriptionWork } from './plan.js';
import { ensureLogicalRole, ensureLogicalSecret, grantStatements } from './role.js';
import { createSubscriptionSlot, dropSlotIfIdle } from './slot.js';
import { ensureDatabase, nodeSubscriber, onSubscriber, remotePassfileCurrent, writeRemotePassfile } from './subscriber.js';
import { createSubscriptionSql, subscriptionComment } from './subscriptions.js';
import { inTransaction, pgSays } from './tx.js';
import { awaitInitialCopy } from './copy-wait.js';
import { reconcileFailoverSlots } from './failover-slots.js';

export type Log = (line: string) => void;

export interface ApplyOptions {
  /** Say what would change, change nothing. */
  readonly dryRun: boolean;
  /** Also drop what pgmaestro made and the file no longer names. */
  readonly prune: boolean;
  /** Wait for the initial copy (then build the query nodes' indexes); off: they are built by the next apply. */
  readonly wait: boolean;
  readonly copyTimeoutMs: number;
}

/**
 * `pgmaestro logical apply`: make publications, subscriptions, the tables
 * they need and the query nodes' indexes what pgmaestro.yaml declares.
 * Idempotent: a second run changes nothing. Every refusal happens before the
 * first change (the plan reads and rehearses everything first). Drops only
 * with `prune`; otherwise it says what it would drop. Returns how many
 * changes it made (0: everything was as declared). The caller holds the cluster lock.
 */
export async function logicalApply(ctx: ClusterContext, secrets: Secrets, opts: ApplyOptions, log: Log): Promise<number> {
  const lg = ctx.cfg.logical!;
  // 1. read and decide everything; PostgreSQL rehearses the DDL
  const plan = await planLogical(ctx, secrets, opts.prune);
  if (plan.refusals.length > 0) throw refusal(plan.refusals, ctx.cfg.file);
  const primary = plan.primary;
  const will = (s: string) => log(opts.dryRun ? `would ${s}` : s);
  let changes = 0;

  // 2. the primary must write logical WAL: the members' configuration says so; the restart is the operator's
  if (lg.publications.length > 0 && plan.walLevel !== 'logical') {
    if (!opts.dryRun) await applyMemberFiles(ctx, secrets, log);
    throw new PgmError('cluster.state', `${primary.name} runs wal_level = ${plan.walLevel}, and logical replication needs wal_level = logical, which takes effect only at a restart.`, {
      hint: `run pgmaestro restart --pending (a rolling restart, no downtime), then pgmaestro logical apply again.${opts.dryRun ? ' (dry run: nothing was written)' : ' The configuration files already say logical.'}`,
    });
  }
  if (opts.dryRun) return describePlan(plan, opts, log);

  // 3. the role subscribers connect as, and pg_hba lines that let them in (a reload, never a restart)
  const secret = ensureLogicalSecret(ctx, lg.role);
  const onPrimary = <T>(database: string, fn: (c: pg.Client) => Promise<T>) => withClient({ ...adminTarget(ctx, primary, secrets), database }, fn, 30_000);
  if (lg.subscriptions.length > 0) {
    const did = await onPrimary('postgres', (c) => ensureLogicalRole(c, lg.role, secret));
    if (did) (log(did), changes++);
  }
  changes += await applyMemberFiles(ctx, secrets, log);

  // 4. publications and the role's grants, one transaction per database
  for (const db of [...new Set(plan.publications.map((p) => p.decl.database))]) {
    const works = plan.publications.filter((p) => p.decl.database === db);
    const tables = works.flatMap((w) => w.snapshot.tables.map((t) => ({ schema: t.schema, name: t.name })));
    await onPrimary(db, async (c) => {
      const grants = lg.subscriptions.length > 0 ? await grantStatements(c, lg.role, tables) : [];
      await inTransaction(c, [...works.flatMap((w) => w.plan.statements), ...grants], (sql, err) => failed(`${primary.name} (database ${db})`, sql, err));
      for (const w of works) if (w.plan.sentence) (log(done(w.plan.sentence)), changes++);
      if (grants.length > 0) (log(`granted ${lg.role} what it needs in ${db} on ${primary.name} (${grants.length} statement${grants.length === 1 ? '' : 's'})`), changes++);
    });
  }

  // 5. subscriptions: the tables they need, then the subscription, on each subscriber
  const copying: SubscriptionWork[] = [];
  for (const w of plan.subscriptions) {
    const n = await applySubscription(ctx, w, secret.password, primary.name, onPrimary, log);
    changes += n;
    if (w.steps.some((s) => s.kind === 'create' || s.kind === 'refresh')) copying.push(w);
  }

  // 6. what the file no longer names
  changes += await prune(plan, opts.prune, onPrimary, log);

  // 7. the initial copy, then the query nodes' own indexes
  const indexWork = plan.indexes.filter((i) => i.steps.length > 0);
  const waitFor = plan.subscriptions.filter((w) => copying.includes(w) || indexWork.some((i) => i.node.name === w.subscriber.node?.name && i.database === w.decl.database));
  const copied = opts.wait ? await awaitInitialCopy(ctx, waitFor, opts.copyTimeoutMs, log) : new Set<string>();
  for (const iw of indexWork) {
    const pending = waitFor.filter((w) => w.subscriber.node?.name === iw.node.name && w.decl.database === iw.database && !copied.has(w.decl.name));
    if (pending.length > 0) {
      log(`${iw.node.name}: its indexes in ${iw.database} wait for the initial copy of ${pending.map((p) => p.decl.name).join(', ')}; run pgmaestro logical apply again once logical status says ready`);
      continue;
    }
    await onSubscriber(
      nodeSubscriber(ctx, secrets, iw.node.name),
      iw.database,
      async (c) => {
        await c.query('SET statement_timeout = 0');
        for (const e of iw.extensions) await c.query(`CREATE EXTENSION IF NOT EXISTS ${quoteIdent(e)}`);
        for (const step of iw.steps) {
          for (const sql of indexStatements(step, ctx.cfg.cluster)) await c.query(sql).catch((err) => Promise.reject(failed(`${iw.node.name} (database ${iw.database})`, sql, err)));
          log(describeIndexStep(step, iw.node.name));
          changes++;
        }
      },
      30_000,
    );
  }

  // 8. failover slots: standbys keep copies; the primary waits for them before subscribers get a change
  for (const line of await reconcileFailoverSlots(ctx, secrets)) (log(line), changes++);
  if (changes === 0) log(`logical replication is as declared: ${summary(plan)}`);
  return changes;
}

/** The members' (and query nodes') files, checked by PostgreSQL, written and reloaded where they changed; returns how many nodes changed. */
async function applyMemberFiles(ctx: ClusterContext, secrets: Secrets, log: Log): Promise<number> {
  const plans = await plannedRoles(ctx, new Set((await ctx.store.read())?.fenced ?? []));
  await checkPlanned(ctx, plans);
  let n = 0;
  for (const { node, role } of plans) {
    // on the node's host, as `reload` does: written, reloaded where it runs, and what took effect said
    const change = await ctx.control(node).configure(role);
    const line = describe(change);
    if (line) log(line);
    if (change.outcome !== 'unchanged') n++;
  }
  return n;
}

async function applySubscription(ctx: ClusterContext, w: SubscriptionWork, password: string, primary: string, onPrimary: <T>(db: string, fn: (c: pg.Client) => Promise<T>) => Promise<T>, log: Log): Promise<number> {
  const { subscriber: sub, decl } = w;
  const where = `${sub.label} (database ${decl.database})`;
  const pubDb = ctx.cfg.logical!.publications.find((p) => p.name === decl.publication)!.database;
  let changes = 0;
  if (sub.node && w.createDatabase && (await ensureDatabase(sub, decl.database))) {
    log(`created database ${decl.database} on ${sub.node.name}`);
    changes++;
  }
  if (!sub.node) {
    await onSubscriber(sub, decl.database, async (c) => {
      if (await remotePassfileCurrent(c, sub.passfile, ctx.cfg.logical!.role, password)) return;
      await writeRemotePassfile(c, sub.passfile, ctx.cfg.logical!.role, password).catch((err) => {
        throw new PgmError('logical.failed', `could not write the passfile ${sub.passfile} on ${sub.label} through its server: ${pgSays(err)}.`, {
          hint: `the dsn's user must be a superuser and the directory writable by the server's OS user; or create the file yourself (mode 0600, owned by that user) with the line from ${ctx.paths.logicalPassfile}.`,
        });
      });
      log(`wrote the passfile ${sub.passfile} on ${sub.label} (read by its server, 0600)`);
      changes++;
    });
  }
  if (w.steps.some((s) => s.kind === 'create')) {
    // the slot first (on the primary), then tables and subscription in one transaction; a failure drops the slot again
    await onPrimary(pubDb, (c) => createSubscriptionSlot(c, decl.name, pubDb, ctx.bins.major, primary));
    try {
      await onSubscriber(sub, decl.database, (c) => inTransaction(c, [...w.ddl, createSubscriptionSql(w.wanted), subscriptionComment(decl.name, ctx.cfg.cluster)], (sql, err) => failed(where, sql, err)), 60_000);
    } catch (err) {
      await onPrimary(pubDb, (c) => dropSlotIfIdle(c, decl.name)).catch(() => undefined);
      throw err;
    }
    if (w.created.length > 0) log(`created ${w.created.length} table${w.created.length === 1 ? '' : 's'} on ${where} from ${primary}'s catalog: ${w.created.map((t) => `${t.schema}.${t.name}`).join(', ')}`);
    log(`created subscription ${decl.name} on ${where} to publication ${decl.publication} (slot ${decl.name} on ${primary}${ctx.bins.major >= 17 ? ', a failover slot' : ''}); its initial copy starts now`);
    for (const n of w.notes) log(`note: ${n}`);
    return changes + 1;
  }
  const alters = w.steps.flatMap((s) => (s.kind === 'alter' ? [s] : []));
  if (w.ddl.length > 0 || alters.length > 0) {
    await onSubscriber(sub, decl.database, (c) => inTransaction(c, [...w.ddl, ...alters.map((a) => a.sql)], (sql, err) => failed(where, sql, err)), 60_000);
    if (w.created.length > 0) log(`created ${w.created.map((t) => `${t.schema}.${t.name}`).join(', ')} on ${where} from ${primary}'s catalog`);
    if (w.fixes.length > 0) log(`${where}: ${w.fixes.length} column${w.fixes.length === 1 ? '' : 's'} added that ${primary} has and it lacked`);
    for (const a of alters) log(`subscription ${decl.name} on ${where}: ${a.what}`);
    for (const n of w.notes) log(`note: ${n}`);
    changes += alters.length + (w.ddl.length > 0 ? 1 : 0);
  }
  const refresh = w.steps.find((s) => s.kind === 'refresh');
  if (refresh && refresh.kind === 'refresh') {
    await onSubscriber(sub, decl.database, (c) => c.query(`ALTER SUBSCRIPTION ${quoteIdent(decl.name)} REFRESH PUBLICATION`).catch((err) => Promise.reject(failed(where, 'ALTER SUBSCRIPTION … REFRESH PUBLICATION', err))), 60_000);
    const parts = [refresh.added.length > 0 ? `copies ${refresh.added.join(', ')} and follows their changes` : '', refresh.removed.length > 0 ? `no longer follows ${refresh.removed.join(', ')} (their rows stay on ${sub.label})` : ''].filter(Boolean);
    log(`refreshed subscription ${decl.name} on ${where}: ${parts.join('; ') || 'its publication changed'}`);
    changes++;
  }
  return changes;
}

async function prune(plan: LogicalPlan, really: boolean, onPrimary: <T>(db: string, fn: (c: pg.Client) => Promise<T>) => Promise<T>, log: Log): Promise<number> {
  let n = 0;
  const hint = ' (not in pgmaestro.yaml any more; logical apply --prune drops it)';
  for (const d of plan.subscriptionDrops) {
    if (!really) {
      log(`would drop subscription ${d.name} on ${d.subscriber.label} (database ${d.database})${hint}`);
      continue;
    }
    await onSubscriber(d.subscriber, d.database, async (c) => {
      try {
        await c.query(`DROP SUBSCRIPTION ${quoteIdent(d.name)}`);
        log(`dropped subscription ${d.name} on ${d.subscriber.label} and its slot on ${plan.primary.name} (the tables and their rows stay)`);
      } catch {
        // the publisher cannot be reached to drop the slot: detach it, drop the subscription, say what is left
        await c.query(`ALTER SUBSCRIPTION ${quoteIdent(d.name)} DISABLE`);
        await c.query(`ALTER SUBSCRIPTION ${quoteIdent(d.name)} SET (slot_name = NONE)`);
        await c.query(`DROP SUBSCRIPTION ${quoteIdent(d.name)}`);
        log(`dropped subscription ${d.name} on ${d.subscriber.label}; its slot ${d.name} could not be dropped on ${plan.primary.name}: drop it there (SELECT pg_drop_replication_slot('${d.name}')) before it fills the disk`);
      }
    });
    n++;
  }
  for (const d of plan.publicationDrops) {
    if (!really) {
      log(`would drop publication ${d.name} in ${d.database} on ${plan.primary.name}${hint}`);
      continue;
    }
    await onPrimary(d.database, (c) => c.query(`DROP PUBLICATION ${quoteIdent(d.name)}`));
    log(`dropped publication ${d.name} in ${d.database} on ${plan.primary.name}`);
    n++;
  }
  for (const iw of plan.indexes) for (const o of iw.wouldDrop) log(`would drop index ${o.schema}.${o.name} on ${iw.node.name} (database ${iw.database})${hint}`);
  return n;
}

function describePlan(plan: LogicalPlan, opts: ApplyOptions, log: Log): number {
  let n = 0;
  const say = (s: string) => (log(`would ${s}`), n++);
  for (const p of plan.publications) if (p.plan.sentence) say(p.plan.sentence);
  for (const w of plan.subscriptions) {
    const where = `${w.subscriber.label} (database ${w.decl.database})`;
    if (w.createDatabase) say(`create database ${w.decl.database} on ${w.subscriber.label}`);
    if (w.created.length > 0) say(`create ${w.created.map((t) => `${t.schema}.${t.name}`).join(', ')} on ${where} from ${plan.primary.name}'s catalog`);
    if (w.fixes.length > 0) say(`add ${w.fixes.length} column${w.fixes.length === 1 ? '' : 's'} on ${where} that ${plan.primary.name} has`);
    for (const s of w.steps) {
      if (s.kind === 'create') say(`create subscription ${w.decl.name} on ${where} to publication ${w.decl.publication}`);
      else if (s.kind === 'alter') say(`alter subscription ${w.decl.name} on ${where}: ${s.what}`);
      else say(`refresh subscription ${w.decl.name} on ${where}${s.added.length > 0 ? `: copy ${s.added.join(', ')}` : ''}${s.removed.length > 0 ? `; stop following ${s.removed.join(', ')}` : ''}`);
    }
    for (const note of w.notes) log(`note: ${note}`);
  }
  for (const iw of plan.indexes) for (const s of iw.steps) say(describeIndexStep(s, iw.node.name));
  for (const d of plan.subscriptionDrops) log(`would drop subscription ${d.name} on ${d.subscriber.label}${opts.prune ? '' : ' (with --prune)'}`);
  for (const d of plan.publicationDrops) log(`would drop publication ${d.name} in ${d.database}${opts.prune ? '' : ' (with --prune)'}`);
  for (const iw of plan.indexes) for (const o of iw.wouldDrop) log(`would drop index ${o.schema}.${o.name} on ${iw.node.name}${opts.prune ? '' : ' (with --prune)'}`);
  if (n === 0) log(`logical replication is as declared: ${summary(plan)}`);
  return n;
}

function summary(plan: LogicalPlan): string {
  const count = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;
  return [count(plan.publications.length, 'publication'), count(plan.subscriptions.length, 'subscription'), count(plan.indexes.reduce((a, i) => a + i.node.indexes.filter((x) => x.database === i.database).length, 0), 'query-node index')].join(', ');
}

/** A plan's sentence ("create publication …") as done ("created publication …"). */
function done(s: string): string {
  return s.replace(/^(create|recreate|alter|adopt)\b/, (v) => ({ create: 'created', recreate: 'recreated', alter: 'altered', adopt: 'adopted' })[v as 'create']);
}

/** One sentence for the first refusal (and how many more there are). */
export function refusal(list: readonly Refusal[], file: string): PgmError {
  const [first, ...rest] = list;
  return new PgmError('logical.refused', `${first.message}${rest.length > 0 ? ` (and ${rest.length} more: ${rest.map((r) => r.message.split(':')[0]).join('; ')})` : ''}; nothing was changed.`, {
    hint: first.hint,
    data: { file, refusals: list },
  });
}

function failed(where: string, sql: string, err: unknown): PgmError {
  return new PgmError('logical.failed', `${where} refused ${sql.replace(/\s+/g, ' ').slice(0, 120)}: ${pgSays(err)}.`, {
    hint: 'fix the cause there and run pgmaestro logical apply again (each step is idempotent).',
    cause: err,
  });
}
