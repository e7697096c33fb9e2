import type pg from 'pg';
import { quoteLiteral } from '../postgres/sql.js';
import { q } from './ddl.js';
import { managedComment, parseManaged } from './publications.js';

/**
 * Subscriptions on a subscriber: what exists (observe), the connection
 * string they use (pure) and what changes (plan, pure).
 *
 * The connection string lists every physical node with
 * `target_session_attrs=read-write`: after a failover or switchover the
 * apply worker's next connection finds the new primary by itself, with no
 * daemon in between. It names the role and a passfile, never a password.
 */

export interface PublisherHost {
  readonly host: string;
  readonly port: number;
}

/** Quotes a libpq conninfo value when it needs it. */
export function conninfoValue(v: string): string {
  return /^[A-Za-z0-9_.,\/:@+-]+$/.test(v) ? v : `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

export function subscriptionConninfo(hosts: readonly PublisherHost[], database: string, role: string, passfile: string): string {
  return [
    `host=${conninfoValue(hosts.map((h) => h.host).join(','))}`,
    `port=${hosts.map((h) => h.port).join(',')}`,
    `dbname=${conninfoValue(database)}`,
    `user=${conninfoValue(role)}`,
    `passfile=${conninfoValue(passfile)}`,
    'target_session_attrs=read-write',
    'connect_timeout=10',
  ].join(' ');
}

export interface ObservedSubscription {
  readonly oid: number;
  readonly name: string;
  readonly database: string;
  readonly enabled: boolean;
  readonly conninfo: string;
  readonly slot: string | null;
  readonly publications: readonly string[];
  /** pgmaestro's digest when it manages the subscription, else null; known only from the subscription's own database (comments live there). */
  readonly digest: string | null;
}

/** Every subscription on the subscriber the client is connected to (the catalog is shared by its databases; their comments are not). */
export async function observeSubscriptions(c: pg.Client, cluster: string): Promise<ObservedSubscription[]> {
  const r = await c.query<{ oid: number; subname: string; datname: string; subenabled: boolean; subconninfo: string; subslotname: string | null; subpublications: string[]; comment: string | null }>(
    `SELECT s.oid, s.subname, d.datname, s.subenabled, s.subconninfo, s.subslotname, s.subpublications::text[] AS subpublications,
            CASE WHEN s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()) THEN obj_description(s.oid, 'pg_subscription') END AS comment
       FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid ORDER BY s.subname`,
  );
  return r.rows.map((x) => ({
    oid: Number(x.oid),
    name: x.subname,
    database: x.datname,
    enabled: x.subenabled,
    conninfo: x.subconninfo,
    slot: x.subslotname,
    publications: x.subpublications,
    digest: parseManaged(x.comment, cluster),
  }));
}

/** The tables (schema.table) a subscription has in pg_subscription_rel, with their state letter. */
export async function subscribedTables(c: pg.Client, subscription: string): Promise<Map<string, string>> {
  const r = await c.query<{ t: string; state: string }>(
    `SELECT n.nspname || '.' || c.relname AS t, sr.srsubstate::text AS state
       FROM pg_subscription_rel sr JOIN pg_class c ON c.oid = sr.srrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE sr.srsubid = (SELECT oid FROM pg_subscription WHERE subname = $1 AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()))`,
    [subscription],
  );
  return new Map(r.rows.map((x) => [x.t, x.state]));
}

export interface WantedSubscription {
  readonly name: string;
  readonly publication: string;
  readonly database: string;
  readonly enabled: boolean;
  readonly conninfo: string;
}

export type SubscriptionStep =
  | { readonly kind: 'create' }
  | { readonly kind: 'alter'; readonly sql: string; readonly what: string }
  | { readonly kind: 'refresh'; readonly added: readonly string[]; readonly removed: readonly string[] };

/**
 * What brings `have` to `want`, pure. `published` are the leaf tables the
 * publication sends now, `subscribed` those the subscription knows: a
 * difference needs a REFRESH PUBLICATION (after the new tables exist).
 * A subscription of the same name in another database is refused by the caller.
 */
export function planSubscription(want: WantedSubscription, have: ObservedSubscription | null, published: readonly string[], subscribed: readonly string[], cluster: string): SubscriptionStep[] {
  if (!have) return [{ kind: 'create' }];
  const steps: SubscriptionStep[] = [];
  const sub = q(want.name);
  if (have.conninfo !== want.conninfo) steps.push({ kind: 'alter', sql: `ALTER SUBSCRIPTION ${sub} CONNECTION ${quoteLiteral(want.conninfo)}`, what: 'connect to the cluster’s nodes as they are configured now' });
  if (have.publications.length !== 1 || have.publications[0] !== want.publication) {
    steps.push({ kind: 'alter', sql: `ALTER SUBSCRIPTION ${sub} SET PUBLICATION ${q(want.publication)} WITH (refresh = false)`, what: `subscribe to publication ${want.publication}` });
  }
  const added = published.filter((t) => !subscribed.includes(t));
  const removed = subscribed.filter((t) => !published.includes(t));
  if (added.length > 0 || removed.length > 0 || steps.some((s) => s.kind === 'alter' && s.sql.includes('SET PUBLICATION'))) steps.push({ kind: 'refresh', added, removed });
  if (have.enabled !== want.enabled) steps.push({ kind: 'alter', sql: `ALTER SUBSCRIPTION ${sub} ${want.enabled ? 'ENABLE' : 'DISABLE'}`, what: want.enabled ? 'enable it' : 'disable it' });
  if (have.digest === null) steps.push({ kind: 'alter', sql: subscriptionComment(want.name, cluster), what: 'manage it from now on (made by hand before)' });
  return steps;
}

export function subscriptionComment(name: string, cluster: string): string {
  return `COMMENT ON SUBSCRIPTION ${q(name)} IS ${quoteLiteral(managedComment('v1', cluster))}`;
}

/** CREATE SUBSCRIPTION on a slot pgmaestro made on the publisher (so it can run in the schema copy's transaction). */
export function createSubscriptionSql(want: WantedSubscription): string {
  return `CREATE SUBSCRIPTION ${q(want.name)} CONNECTION ${quoteLiteral(want.conninfo)} PUBLICATION ${q(want.publication)} WITH (create_slot = false, slot_name = ${quoteLiteral(want.name)}, copy_data = true, enabled = ${want.enabled})`;
}

/** Table states in pg_subscription_rel, as a DBA says them. */
export function tableState(letter: string): 'copying' | 'catching up' | 'ready' | 'unknown' {
  if (letter === 'i' || letter === 'd') return 'copying';
  if (letter === 'f' || letter === 's') return 'catching up';
  if (letter === 'r') return 'ready';
  return 'unknown';
}
