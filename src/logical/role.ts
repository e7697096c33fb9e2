import type pg from 'pg';
import type { ClusterContext } from '../cluster/context.js';
import { readOrCreate, writeOwned } from '../cluster/secrets.js';
import { ensureOwnedDir } from '../postgres/osuser.js';
import { passLine } from '../postgres/passfile.js';
import { scramVerifier } from '../postgres/scram.js';
import { quoteIdent, quoteLiteral } from '../postgres/sql.js';
import fs from 'node:fs';
import { qn } from './ddl.js';
import type { QualifiedName } from './catalog-types.js';

/**
 * The role subscribers connect as: LOGIN and REPLICATION (a walsender
 * connection needs it), CONNECT on the published databases, USAGE on their
 * schemas and SELECT on the published tables (the initial copy reads them)
 * — nothing else: no superuser, no writes, no other table. Its password is
 * generated once into secrets/ (0600) with a passfile beside it; the
 * server only ever receives its SCRAM verifier.
 */

export interface LogicalSecret {
  readonly password: string;
  readonly passfile: string;
  /** True when the password was made just now (the role's password must be set again). */
  readonly fresh: boolean;
}

export function ensureLogicalSecret(ctx: ClusterContext, role: string): LogicalSecret {
  ensureOwnedDir(ctx.paths.secretsDir, ctx.user, 0o700);
  const fresh = !fs.existsSync(ctx.paths.logicalPassword);
  const password = readOrCreate(ctx.paths.logicalPassword, ctx.user);
  writeOwned(ctx.paths.logicalPassfile, passLine(role, password) + '\n', ctx.user);
  return { password, passfile: ctx.paths.logicalPassfile, fresh };
}

/** Creates the role, or makes it what it must be; returns what it did (null: nothing). `c` is on the primary. */
export async function ensureLogicalRole(c: pg.Client, role: string, secret: LogicalSecret): Promise<string | null> {
  await c.query("SET log_statement = 'none'");
  const r = await c.query<{ rolsuper: boolean; rolcanlogin: boolean; rolreplication: boolean; rolcreatedb: boolean; rolcreaterole: boolean; rolbypassrls: boolean }>(
    'SELECT rolsuper, rolcanlogin, rolreplication, rolcreatedb, rolcreaterole, rolbypassrls FROM pg_roles WHERE rolname = $1',
    [role],
  );
  const verifier = quoteLiteral(scramVerifier(secret.password));
  if (r.rowCount === 0) {
    await c.query(`CREATE ROLE ${quoteIdent(role)} WITH LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD ${verifier}`);
    return `created the role ${role} (LOGIN REPLICATION, nothing else)`;
  }
  const x = r.rows[0];
  const right = !x.rolsuper && x.rolcanlogin && x.rolreplication && !x.rolcreatedb && !x.rolcreaterole && !x.rolbypassrls;
  if (right && !secret.fresh) return null;
  await c.query(`ALTER ROLE ${quoteIdent(role)} WITH LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS${secret.fresh ? ` PASSWORD ${verifier}` : ''}`);
  return `${secret.fresh ? 'gave' : 'reset'} the role ${role} ${secret.fresh ? 'a new password (its secret file was missing) and ' : ''}exactly LOGIN REPLICATION`;
}

/**
 * The GRANT and REVOKE statements that leave `role` with CONNECT on the
 * database, USAGE on the schemas of `tables` and SELECT on exactly `tables`
 * (explicit grants on other tables are revoked). `c` is in the publication's
 * database. Empty when nothing changes.
 */
export async function grantStatements(c: pg.Client, role: string, tables: readonly QualifiedName[]): Promise<string[]> {
  const out: string[] = [];
  const r = await c.query<{ connect: boolean }>("SELECT has_database_privilege($1, current_database(), 'CONNECT') AS connect", [role]);
  if (!r.rows[0].connect) out.push(`GRANT CONNECT ON DATABASE ${quoteIdent((await c.query<{ d: string }>('SELECT current_database() AS d')).rows[0].d)} TO ${quoteIdent(role)}`);
  const schemas = [...new Set(tables.map((t) => t.schema))];
  if (schemas.length > 0) {
    const s = await c.query<{ nspname: string }>("SELECT nspname FROM pg_namespace WHERE nspname = ANY($1) AND NOT has_schema_privilege($2, oid, 'USAGE')", [schemas, role]);
    for (const x of s.rows) out.push(`GRANT USAGE ON SCHEMA ${quoteIdent(x.nspname)} TO ${quoteIdent(role)}`);
  }
  const g = await c.query<{ s: string; t: string }>(
    `SELECT n.nspname AS s, c.relname AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a
      WHERE a.grantee = (SELECT oid FROM pg_roles WHERE rolname = $1) AND a.privilege_type = 'SELECT' AND c.relkind IN ('r', 'p')`,
    [role],
  );
  const granted = new Set(g.rows.map((x) => `${x.s}.${x.t}`));
  const wanted = new Set(tables.map((t) => `${t.schema}.${t.name}`));
  const grant = tables.filter((t) => !granted.has(`${t.schema}.${t.name}`));
  if (grant.length > 0) out.push(`GRANT SELECT ON TABLE ${grant.map(qn).join(', ')} TO ${quoteIdent(role)}`);
  const revoke = g.rows.filter((x) => !wanted.has(`${x.s}.${x.t}`));
  if (revoke.length > 0) out.push(`REVOKE SELECT ON TABLE ${revoke.map((x) => qn({ schema: x.s, name: x.t })).join(', ')} FROM ${quoteIdent(role)}`);
  return out;
}
