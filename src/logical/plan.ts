import type pg from 'pg';
import type { NodeConfig, PublicationConfig, QueryNodeConfig, SubscriptionConfig } from '../config/types.js';
import { adminTarget, currentPrimaryName, findNode, type ClusterContext } from '../cluster/context.js';
import type { Secrets } from '../cluster/secrets.js';
import { withClient } from '../postgres/sql.js';
import { qualified, type CatalogSnapshot, type QualifiedName, type TableDef } from './catalog-types.js';
import { readCatalog, resolveScope, tableOids } from './catalog.js';
import { GUARD_TRIGGER, publishedShape, readOnlyGuardFunction, readOnlyTrigger, schemaCopy, type Refusal, type SubscriberObjects } from './ddl.js';
import { additive, driftFix, driftRefusal, tableDrift } from './drift.js';
import { neededExtensions, observeIndexes, planIndexes, type IndexStep, type ObservedIndex } from './indexes.js';
import { observePublications, planPublication, type PublicationPlan } from './publications.js';
import { nodeSubscriber, onSubscriber, subscriberOf, type Subscriber } from './subscriber.js';
import { observeSubscriptions, planSubscription, subscribedTables, subscriptionConninfo, type SubscriptionStep, type WantedSubscription } from './subscriptions.js';
import { rehearse } from './tx.js';
import { queryNodes } from './query-node.js';

/**
 * `logical apply`, first half: read everything (the primary's catalog, each
 * subscriber's) and decide every statement, rehearsing the DDL in
 * transactions that are rolled back. Nothing is written here, so a refusal
 * leaves the cluster exactly as it was, and `--dry-run` prints this plan.
 */

export interface PublicationWork {
  readonly decl: PublicationConfig;
  readonly plan: PublicationPlan;
  /** Every table the publication covers (partitioned parents included). */
  readonly snapshot: CatalogSnapshot;
  /** The leaf tables it sends (schema.table): what a subscription lists. */
  readonly published: readonly string[];
}

export interface SubscriptionWork {
  readonly decl: SubscriptionConfig;
  readonly subscriber: Subscriber;
  readonly wanted: WantedSubscription;
  readonly createDatabase: boolean;
  readonly steps: readonly SubscriptionStep[];
  /** Schema copy, additive fixes and read-only guards, for one transaction on the subscriber. */
  readonly ddl: readonly string[];
  readonly created: readonly QualifiedName[];
  readonly fixes: readonly string[];
  readonly notes: readonly string[];
  /** Every table (schema.table) the subscription brings to the subscriber, partitioned parents included. */
  readonly tables: readonly string[];
}

export interface IndexWork {
  readonly node: QueryNodeConfig;
  readonly database: string;
  readonly extensions: readonly string[];
  readonly steps: readonly IndexStep[];
  readonly wouldDrop: readonly ObservedIndex[];
}

export interface LogicalPlan {
  readonly primary: NodeConfig;
  readonly walLevel: string;
  /** Publications by database. */
  readonly publications: readonly PublicationWork[];
  readonly publicationDrops: readonly { readonly database: string; readonly name: string }[];
  readonly subscriptions: readonly SubscriptionWork[];
  readonly subscriptionDrops: readonly { readonly subscriber: Subscriber; readonly name: string; readonly database: string }[];
  readonly indexes: readonly IndexWork[];
  readonly refusals: readonly Refusal[];
}

export async function planLogical(ctx: ClusterContext, secrets: Secrets, prune: boolean): Promise<LogicalPlan> {
  const lg = ctx.cfg.logical!;
  const primary = findNode(ctx.cfg, await currentPrimaryName(ctx));
  const refusals: Refusal[] = [];
  const onPrimary = <T>(database: string, fn: (c: pg.Client) => Promise<T>) => withClient({ ...adminTarget(ctx, primary, secrets), database }, fn, 10_000);

  // 1. the primary: its WAL level and databases
  const { walLevel, databases } = await onPrimary('postgres', async (c) => ({
    walLevel: (await c.query<{ w: string }>("SELECT current_setting('wal_level') AS w")).rows[0].w,
    databases: (await c.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate')).rows.map((r) => r.datname),
  }));

  // 2. each publication against the primary's catalog, rehearsed
  const publications: PublicationWork[] = [];
  for (const decl of lg.publications) {
    if (!databases.includes(decl.database)) {
      refusals.push({ message: `publication ${decl.name} is in database ${decl.database}, which does not exist on the primary ${primary.name}`, hint: `create the database (CREATE DATABASE ${decl.database}) or correct logical.publications[].database in ${ctx.cfg.file}.` });
      continue;
    }
    const work = await onPrimary(decl.database, (c) => planOnePublication(c, ctx, decl, primary.name, refusals));
    if (work) publications.push(work);
  }
  const publicationDrops: { database: string; name: string }[] = [];
  for (const db of databases) {
    const observed = await onPrimary(db, (c) => observePublications(c, ctx.cfg.cluster));
    for (const p of observed) if (p.digest !== null && !lg.publications.some((d) => d.name === p.name && d.database === db)) publicationDrops.push({ database: db, name: p.name });
  }

  // 3. each subscription against its subscriber's catalog, rehearsed
  const hosts = ctx.cfg.nodes.map((n) => ({ host: n.replication, port: n.port }));
  const subscriptions: SubscriptionWork[] = [];
  const subscriptionDrops: LogicalPlan['subscriptionDrops'][number][] = [];
  for (const decl of lg.subscriptions) {
    const pub = publications.find((p) => p.decl.name === decl.publication);
    if (!pub) continue; // its publication was refused already
    const subscriber = subscriberOf(ctx, secrets, decl);
    const wanted: WantedSubscription = { name: decl.name, publication: decl.publication, database: decl.database, enabled: decl.enabled, conninfo: subscriptionConninfo(hosts, pub.decl.database, lg.role, subscriber.passfile) };
    subscriptions.push(await planOneSubscription(ctx, decl, pub, subscriber, wanted, primary.name, refusals));
  }
  for (const node of queryNodes(ctx)) {
    const sub = nodeSubscriber(ctx, secrets, node.name);
    const listed = await onSubscriber(sub, 'postgres', (c) => observeSubscriptions(c, ctx.cfg.cluster)).catch(() => []);
    for (const db of [...new Set(listed.map((o) => o.database))]) {
      const observed = (await onSubscriber(sub, db, (c) => observeSubscriptions(c, ctx.cfg.cluster)).catch(() => [])).filter((o) => o.database === db);
      for (const o of observed) if (o.digest !== null && !lg.subscriptions.some((d) => d.name === o.name && d.target.kind === 'node' && d.target.node === node.name)) subscriptionDrops.push({ subscriber: sub, name: o.name, database: o.database });
    }
  }

  // 4. the query nodes' own indexes
  const indexes: IndexWork[] = [];
  for (const node of queryNodes(ctx)) indexes.push(...(await planNodeIndexes(ctx, secrets, node, subscriptions, prune, refusals)));

  return { primary, walLevel, publications, publicationDrops, subscriptions, subscriptionDrops, indexes, refusals };
}

async function planOnePublication(c: pg.Client, ctx: ClusterContext, decl: PublicationConfig, primary: string, refusals: Refusal[]): Promise<PublicationWork | null> {
  const resolved = await resolveScope(c, decl.scope);
  for (const m of resolved.missing) {
    refusals.push({ message: `publication ${decl.name} names ${m.startsWith('schema ') ? m : `the table ${m}`}, which does not exist in database ${decl.database} on ${primary}`, hint: `create it there first, or correct the publication in ${ctx.cfg.file}.` });
  }
  if (resolved.missing.length > 0) return null;
  const snapshot = await readCatalog(c, resolved.oids);
  const changes = decl.publish.includes('update') || decl.publish.includes('delete');
  for (const t of snapshot.tables) {
    if (t.unlogged) refusals.push({ message: `publication ${decl.name} would publish ${qualified(t)}, an unlogged table, which logical replication cannot carry`, hint: `make it logged (ALTER TABLE ${qualified(t)} SET LOGGED) or leave it out of the publication.` });
    if (changes && !t.partitioned && !hasReplicaIdentity(t)) {
      refusals.push({
        message: `publication ${decl.name} would publish updates and deletes of ${qualified(t)}, which has no primary key or replica identity: every UPDATE and DELETE on it would then fail on ${primary}`,
        hint: `add a primary key to ${qualified(t)}, or ALTER TABLE ${qualified(t)} REPLICA IDENTITY FULL (every change then carries the whole old row), or publish only [insert, truncate] in this publication.`,
      });
    }
  }
  if (decl.scope.kind === 'tables') {
    for (const t of decl.scope.tables) {
      const def = snapshot.tables.find((x) => x.schema === t.schema && x.name === t.name)!;
      const absent = (t.columns ?? []).filter((col) => !def.columns.some((x) => x.name === col));
      if (absent.length > 0) refusals.push({ message: `publication ${decl.name} lists the columns ${absent.join(', ')} of ${t.schema}.${t.name}, which it does not have on ${primary}`, hint: 'correct the column list.' });
    }
  }
  const observed = (await observePublications(c, ctx.cfg.cluster)).find((p) => p.name === decl.name) ?? null;
  const plan = planPublication(decl, observed, ctx.cfg.cluster);
  if (refusals.length === 0) {
    const failed = await rehearse(c, plan.statements);
    if (failed) refusals.push({ message: `PostgreSQL on ${primary} refuses publication ${decl.name}: ${failed.said}`, hint: `correct the publication in ${ctx.cfg.file} (its row filters and column lists are checked by PostgreSQL); nothing was changed.` });
  }
  const published = snapshot.tables.filter((t) => !t.partitioned).map(qualified).sort();
  return { decl, plan, snapshot, published };
}

function hasReplicaIdentity(t: TableDef): boolean {
  const ri = t.replicaIdentity;
  return ri.kind === 'full' || ri.kind === 'index' || (ri.kind === 'default' && t.constraints.some((k) => k.kind === 'p'));
}

/** The column list that applies to `t` in `decl` (its own, or that of the declared table it is a partition of). */
function columnListFor(t: TableDef, decl: PublicationConfig, tables: readonly TableDef[]): readonly string[] | null {
  if (decl.scope.kind !== 'tables') return null;
  let cur: TableDef | undefined = t;
  for (let depth = 0; cur && depth < 32; depth++) {
    const d = decl.scope.tables.find((x) => x.schema === cur!.schema && x.name === cur!.name);
    if (d) return d.columns;
    const parent: QualifiedName | undefined = cur.partitionOf?.parent;
    cur = parent ? tables.find((x) => x.schema === parent.schema && x.name === parent.name) : undefined;
  }
  return null;
}

async function planOneSubscription(ctx: ClusterContext, decl: SubscriptionConfig, pub: PublicationWork, subscriber: Subscriber, wanted: WantedSubscription, primary: string, refusals: Refusal[]): Promise<SubscriptionWork> {
  const where = `${subscriber.label} (database ${decl.database})`;
  const shaped = pub.snapshot.tables.map((t) => publishedShape(t, columnListFor(t, pub.decl, pub.snapshot.tables)));
  const snapshot: CatalogSnapshot = { ...pub.snapshot, tables: shaped };
  const changes = pub.decl.publish.includes('update') || pub.decl.publish.includes('delete');

  const exists = subscriber.node ? await onSubscriber(subscriber, 'postgres', async (c) => (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [decl.database])).rowCount !== 0) : true;
  const inspect = async (c: pg.Client) => {
    const observed = await observeSubscriptions(c, ctx.cfg.cluster);
    const elsewhere = observed.find((o) => o.name === decl.name && o.database !== decl.database);
    if (elsewhere) refusals.push({ message: `a subscription named ${decl.name} exists in database ${elsewhere.database} on ${subscriber.label}, but the file puts it in ${decl.database}`, hint: `drop it there (DROP SUBSCRIPTION ${decl.name}) or give the declared one another name.` });
    const have = observed.find((o) => o.name === decl.name && o.database === decl.database) ?? null;
    const subscribed = have ? [...(await subscribedTables(c, decl.name)).keys()].sort() : [];
    const objects = await subscriberObjects(c, snapshot);
    const oids = await tableOids(c, shaped);
    const theirs = await readCatalog(c, [...oids.values()]);
    const guarded = subscriber.readOnlyGuard ? await guardedTables(c) : new Set<string>();
    return { have, subscribed, objects, theirs, guarded };
  };
  const seen = exists
    ? await onSubscriber(subscriber, decl.database, inspect)
    : { have: null, subscribed: [] as string[], objects: { tables: new Set<string>(), types: new Set<string>(), sequences: new Set<string>(), functions: new Set<string>() }, theirs: { tables: [], types: [], extensions: [] } as CatalogSnapshot, guarded: new Set<string>() };

  // drift of the tables the subscriber has already: additive fixes, refusals for the rest
  const fixes: string[] = [];
  const notes: string[] = [];
  for (const t of shaped) {
    const sub = seen.theirs.tables.find((x) => x.schema === t.schema && x.name === t.name);
    if (!sub) continue;
    for (const d of tableDrift(t, sub, changes)) {
      if (!additive(d)) {
        refusals.push(driftRefusal(d, where, primary));
        continue;
      }
      const fix = driftFix(d as Extract<typeof d, { kind: 'missing_column' }>, t);
      fixes.push(fix.sql);
      if (fix.note) notes.push(fix.note);
    }
  }
  const copy = schemaCopy(snapshot, seen.objects, { readOnlyGuard: subscriber.readOnlyGuard, node: subscriber.label });
  refusals.push(...copy.refusals);
  notes.push(...copy.notes);
  const unguarded = subscriber.readOnlyGuard ? shaped.filter((t) => seen.objects.tables.has(qualified(t)) && !seen.guarded.has(qualified(t))) : [];
  const guards = unguarded.length > 0 ? [...readOnlyGuardFunction(), ...unguarded.map(readOnlyTrigger)] : [];
  const ddl = [...copy.statements, ...fixes, ...guards];
  const steps = planSubscription(wanted, seen.have, pub.published, seen.subscribed, ctx.cfg.cluster);

  // PostgreSQL itself checks the DDL, in a transaction that is rolled back (in postgres when the database is still to be made)
  if (ddl.length > 0 && copy.refusals.length === 0) {
    const failed = await onSubscriber(subscriber, exists ? decl.database : 'postgres', (c) => rehearse(c, ddl));
    if (failed) refusals.push({ message: `${subscriber.label} refuses the tables of ${decl.name}: ${failed.said} (in: ${failed.sql.slice(0, 160)})`, hint: 'create what it lacks there (an extension, a type, a function), then run logical apply again; nothing was changed.' });
  }
  return { decl, subscriber, wanted, createDatabase: !exists, steps, ddl, created: copy.created, fixes, notes, tables: shaped.map(qualified) };
}

/** What of the snapshot the subscriber has already. */
async function subscriberObjects(c: pg.Client, snap: CatalogSnapshot): Promise<SubscriberObjects> {
  const tables = new Set((await tableOids(c, snap.tables)).keys());
  const named = async (sql: string, items: readonly QualifiedName[]) => {
    if (items.length === 0) return new Set<string>();
    const r = await c.query<{ q: string }>(sql, [items.map((i) => i.schema), items.map((i) => i.name)]);
    return new Set(r.rows.map((x) => x.q));
  };
  const types = await named(
    `SELECT n.nspname || '.' || t.typname AS q FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN unnest($1::text[], $2::text[]) AS u(s, n) ON u.s = n.nspname AND u.n = t.typname`,
    snap.types,
  );
  const sequences = await named(
    `SELECT n.nspname || '.' || c.relname AS q FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN unnest($1::text[], $2::text[]) AS u(s, n) ON u.s = n.nspname AND u.n = c.relname WHERE c.relkind = 'S'`,
    snap.tables.flatMap((t) => t.sequences),
  );
  const sigs = [...new Set(snap.tables.flatMap((t) => t.functions.map((f) => f.signature)))];
  const functions = new Set<string>();
  for (const sig of sigs) {
    const r = await c.query<{ ok: boolean }>('SELECT to_regprocedure($1) IS NOT NULL AS ok', [sig]).catch(() => null);
    if (r?.rows[0].ok) functions.add(sig);
  }
  return { tables, types, sequences, functions };
}

/** Tables that carry pgmaestro's read-only trigger. */
async function guardedTables(c: pg.Client): Promise<Set<string>> {
  const r = await c.query<{ q: string }>(
    `SELECT n.nspname || '.' || c.relname AS q FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE t.tgname = $1`,
    [GUARD_TRIGGER],
  );
  return new Set(r.rows.map((x) => x.q));
}

async function planNodeIndexes(ctx: ClusterContext, secrets: Secrets, node: QueryNodeConfig, subs: readonly SubscriptionWork[], prune: boolean, refusals: Refusal[]): Promise<IndexWork[]> {
  const mine = subs.filter((s) => s.subscriber.node?.name === node.name);
  const databases = [...new Set([...node.indexes.map((i) => i.database).filter((d): d is string => d !== null), ...mine.map((s) => s.decl.database)])];
  const out: IndexWork[] = [];
  const sub = nodeSubscriber(ctx, secrets, node.name);
  for (const database of databases) {
    const declared = node.indexes.filter((i) => i.database === database);
    const present = await tablesIn(sub, database);
    const known = new Set([...mine.filter((s) => s.decl.database === database).flatMap((s) => s.tables), ...present]);
    // a subscription refused already (its publication) would only make a second, consequential refusal here
    const unplanned = (ctx.cfg.logical?.subscriptions ?? []).some((x) => x.target.kind === 'node' && x.target.node === node.name && x.database === database && !mine.some((m) => m.decl.name === x.name));
    for (const d of unplanned ? [] : declared) {
      if (!known.has(`${d.schema}.${d.table}`)) {
        refusals.push({ message: `${node.name} declares the index ${d.name} on ${d.schema}.${d.table}, which it does not receive in database ${database}`, hint: `subscribe ${node.name} to a publication of ${d.schema}.${d.table}, or correct the index in ${ctx.cfg.file}.` });
      }
    }
    const extensions = neededExtensions(declared, node.extensions);
    for (const e of extensions) {
      const ok = await onSubscriber(sub, 'postgres', async (c) => (await c.query('SELECT 1 FROM pg_available_extensions WHERE name = $1', [e])).rowCount !== 0);
      if (!ok) refusals.push({ message: `the extension ${e}, which the indexes of ${node.name} need, is not available in its PostgreSQL ${ctx.bins.version} (${ctx.bins.dir})`, hint: `install the contrib package of that PostgreSQL, or remove the indexes that use ${e}.` });
    }
    const observed = present.length > 0 ? await onSubscriber(sub, database, (c) => observeIndexes(c, ctx.cfg.cluster)) : [];
    const { steps, wouldDrop } = planIndexes(declared, observed, prune);
    out.push({ node, database, extensions, steps, wouldDrop });
  }
  return out;
}

/** schema.table of the ordinary and partitioned tables in `database` on a subscriber ([] when the database does not exist). */
async function tablesIn(sub: Subscriber, database: string): Promise<string[]> {
  return onSubscriber(sub, database, async (c) => {
    const r = await c.query<{ q: string }>(
      `SELECT n.nspname || '.' || c.relname AS q FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')`,
    );
    return r.rows.map((x) => x.q);
  }).catch(() => []);
}
