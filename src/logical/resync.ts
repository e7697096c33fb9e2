import { adminTarget, currentPrimaryName, findNode, type ClusterContext } from '../cluster/context.js';
import type { Secrets } from '../cluster/secrets.js';
import { PgmError } from '../errors.js';
import { quoteIdent, withClient } from '../postgres/sql.js';
import { logicalApply, type ApplyOptions, type Log } from './apply.js';
import { onSubscriber, subscriberOf } from './subscriber.js';
import { subscribedTables } from './subscriptions.js';
import { dropSlotIfIdle } from './slot.js';
import { qn } from './ddl.js';

/**
 * `pgmaestro logical resync SUBSCRIPTION`: when a subscription cannot go on
 * (its slot did not survive a failover below PostgreSQL 17, or lost WAL it
 * needed), copy its tables afresh: the subscription is dropped (its slot
 * too, where it is left), the tables it followed are emptied on the
 * subscriber, and `logical apply` makes it again with a fresh initial copy.
 * The tables, their indexes and anything else on them stay. The caller
 * holds the cluster lock.
 */
export async function resync(ctx: ClusterContext, secrets: Secrets, name: string, opts: Omit<ApplyOptions, 'dryRun' | 'prune'>, log: Log): Promise<void> {
  const decl = ctx.cfg.logical?.subscriptions.find((s) => s.name === name);
  if (!decl) throw new PgmError('usage', `there is no subscription '${name}' in ${ctx.cfg.file}.`, { hint: 'name a subscription declared under logical.subscriptions.' });
  const sub = subscriberOf(ctx, secrets, decl);
  const primary = findNode(ctx.cfg, await currentPrimaryName(ctx));
  const pubDb = ctx.cfg.logical!.publications.find((p) => p.name === decl.publication)!.database;

  // 1. drop the subscription without touching a slot that may not exist; remember its tables
  const tables = await onSubscriber(sub, decl.database, async (c) => {
    const exists = (await c.query('SELECT 1 FROM pg_subscription WHERE subname = $1 AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())', [name])).rowCount !== 0;
    if (!exists) return [];
    const t = [...(await subscribedTables(c, name)).keys()];
    await c.query(`ALTER SUBSCRIPTION ${quoteIdent(name)} DISABLE`);
    await c.query(`ALTER SUBSCRIPTION ${quoteIdent(name)} SET (slot_name = NONE)`);
    await c.query(`DROP SUBSCRIPTION ${quoteIdent(name)}`);
    return t;
  });
  log(tables.length > 0 ? `dropped subscription ${name} on ${sub.label} (its ${tables.length} tables stay)` : `subscription ${name} did not exist on ${sub.label}`);
  if (await withClient({ ...adminTarget(ctx, primary, secrets), database: pubDb }, (c) => dropSlotIfIdle(c, name)).catch(() => false)) log(`dropped its old slot ${name} on ${primary.name}`);

  // 2. empty the tables it followed (as replica, so pgmaestro's read-only trigger of a query node lets it)
  if (tables.length > 0) {
    await onSubscriber(sub, decl.database, async (c) => {
      await c.query('BEGIN');
      await c.query("SET LOCAL session_replication_role = 'replica'");
      await c.query(`TRUNCATE ${tables.map((t) => qn({ schema: t.split('.')[0], name: t.split('.').slice(1).join('.') })).join(', ')}`);
      await c.query('COMMIT');
    });
    log(`emptied ${tables.join(', ')} on ${sub.label}`);
  }

  // 3. make it again, with a fresh initial copy
  await logicalApply(ctx, secrets, { ...opts, dryRun: false, prune: false }, log);
}
