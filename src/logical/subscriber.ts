import type pg from 'pg';
import { adminTarget, type ClusterContext } from '../cluster/context.js';
import type { Secrets } from '../cluster/secrets.js';
import type { QueryNodeConfig, SubscriptionConfig } from '../config/types.js';
import { PgmError } from '../errors.js';
import { defaultPassfile, passLine, readPassword } from '../postgres/passfile.js';
import { quoteIdent, quoteLiteral, withClient, type SqlTarget } from '../postgres/sql.js';

/**
 * Where a subscription lives, behind one shape: a query node of this
 * cluster (pgmaestro reaches it as the cluster's superuser; its server reads
 * the logical role's passfile from secrets/) or any PostgreSQL given by DSN
 * (pgmaestro connects with the user's passfile; the server reads the
 * passfile the configuration names, which pgmaestro writes there through
 * that connection — so it works for a server on another host too).
 */
export interface Subscriber {
  /** For messages: `query1`, or `10.0.0.9:5432`. */
  readonly label: string;
  readonly node: QueryNodeConfig | null;
  /** The file the subscriber's server reads the logical role's password from. */
  readonly passfile: string;
  /** Copied tables get the trigger that refuses application writes (query nodes only: a DSN is the user's own server). */
  readonly readOnlyGuard: boolean;
  target(database: string): SqlTarget;
}

/** How a subscription's subscriber is named in messages: the query node, or host:port. */
export function targetLabel(s: SubscriptionConfig): string {
  return s.target.kind === 'node' ? s.target.node : `${s.target.host}:${s.target.port}`;
}

export function subscriberOf(ctx: ClusterContext, secrets: Secrets, s: SubscriptionConfig): Subscriber {
  const t = s.target;
  if (t.kind === 'node') {
    const node = (ctx.cfg.queryNodes ?? []).find((n) => n.name === t.node)!;
    return {
      label: node.name,
      node,
      passfile: ctx.paths.logicalPassfile,
      readOnlyGuard: true,
      target: (database) => ({ ...adminTarget(ctx, node, secrets), database, writable: true }),
    };
  }
  const file = defaultPassfile(t.adminPassfile);
  const label = targetLabel(s);
  return {
    label,
    node: null,
    passfile: t.passfile,
    readOnlyGuard: false,
    target: (database) => {
      const password = readPassword(file, { host: t.host, port: t.port, database, user: t.user });
      if (password === null) {
        throw new PgmError('usage', `no password for ${t.user}@${label}/${database} in ${file}, which pgmaestro reads to reach the subscriber of ${s.name}.`, {
          hint: `add a line ${t.host}:${t.port}:${database}:${t.user}:PASSWORD to ${file} (mode 0600), or set admin_passfile: in the subscription's to:.`,
        });
      }
      return { host: t.host, port: t.port, user: t.user, password, database };
    },
  };
}

/** A query node as a subscriber, for work that concerns the node rather than one subscription (its indexes, its subscriptions' list). */
export function nodeSubscriber(ctx: ClusterContext, secrets: Secrets, node: string): Subscriber {
  return subscriberOf(ctx, secrets, { name: '', publication: '', target: { kind: 'node', node }, database: 'postgres', enabled: true });
}

/** Creates `database` on a query node when it lacks it; returns whether it did. */
export async function ensureDatabase(sub: Subscriber, database: string): Promise<boolean> {
  return onSubscriber(sub, 'postgres', async (c) => {
    if ((await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [database])).rowCount !== 0) return false;
    await c.query(`CREATE DATABASE ${quoteIdent(database)}`);
    return true;
  });
}

/** A path as one single-quoted shell word (the configuration refuses paths with a quote). */
function shellWord(p: string): string {
  return `'${p.replace(/'/g, `'\\''`)}'`;
}

/**
 * Writes the logical role's passfile on a DSN subscriber's host through its
 * server: `COPY … TO PROGRAM` (a superuser's right) runs `umask 077; cat`
 * as the server's OS user, so the file is that user's, mode 0600, written
 * aside and renamed into place. The password travels as a bind parameter
 * and then on the program's standard input — never on a command line — and
 * the session logs no statement, so it reaches neither a log, the process
 * list nor pg_stat_activity.
 */
export async function writeRemotePassfile(c: pg.Client, file: string, role: string, password: string): Promise<void> {
  await c.query("SET log_statement = 'none'");
  await c.query('SET log_min_duration_statement = -1');
  await c.query('SET log_parameter_max_length_on_error = 0');
  await c.query('BEGIN');
  try {
    await c.query('CREATE TEMP TABLE pgmaestro_passfile (line text) ON COMMIT DROP');
    await c.query('INSERT INTO pgmaestro_passfile VALUES ($1)', [passLine(role, password)]);
    const tmp = `${file}.pgmaestro-tmp`;
    const program = `umask 077 && cat > ${shellWord(tmp)} && mv -f ${shellWord(tmp)} ${shellWord(file)}`;
    await c.query(`COPY pgmaestro_passfile TO PROGRAM ${quoteLiteral(program)}`);
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** Whether the passfile on the subscriber's host holds the role's line and is 0600 (read through its server, as a superuser). */
export async function remotePassfileCurrent(c: pg.Client, file: string, role: string, password: string): Promise<boolean> {
  try {
    const r = await c.query<{ t: string }>('SELECT pg_read_file($1) AS t', [file]);
    if (r.rows[0].t.trim() !== passLine(role, password)) return false;
    await c.query('BEGIN');
    try {
      await c.query('CREATE TEMP TABLE pgmaestro_mode (m text) ON COMMIT DROP');
      await c.query(`COPY pgmaestro_mode FROM PROGRAM ${quoteLiteral(`stat -c %a ${shellWord(file)}`)}`);
      const m = await c.query<{ m: string }>('SELECT m FROM pgmaestro_mode');
      return m.rows[0]?.m.trim() === '600';
    } finally {
      await c.query('ROLLBACK').catch(() => undefined);
    }
  } catch {
    return false;
  }
}

/** Runs `fn` on the subscriber in `database`; a failure to connect names the subscriber. */
export async function onSubscriber<T>(sub: Subscriber, database: string, fn: (c: pg.Client) => Promise<T>, timeoutMs = 10_000): Promise<T> {
  return withClient(sub.target(database), fn, timeoutMs);
}
