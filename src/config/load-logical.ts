import { PgmError } from '../errors.js';
import type { RawConfig, RawLogical, RawNode } from './schema.js';
import type { IndexDecl, LogicalConfig, NodeConfig, PublicationConfig, QueryNodeConfig, SubscriberTarget, SubscriptionConfig, TableDecl } from './types.js';

/**
 * The logical-replication part of the configuration, resolved and checked
 * against the rest of the file: every subscription names a declared
 * publication and a query node (or a DSN), every name is used once, a query
 * node's indexes say where they go. Each refusal names the key and what to do.
 */

type Fail = (keyPath: string, message: string, hint: string) => never;

function failer(file: string): Fail {
  return (keyPath, message, hint) => {
    throw new PgmError('config.invalid', `${file}: ${keyPath}: ${message}.`, { hint, data: { file, keyPath } });
  };
}

/** A query node from its raw entry and the fields every node has. */
export function queryNode(file: string, raw: RawNode, index: number, base: NodeConfig, subscriptionDbs: readonly string[]): QueryNodeConfig {
  const fail = failer(file);
  const indexes = raw.indexes.map((ix, j): IndexDecl => {
    const sql = typeof ix === 'string' ? ix : ix.sql;
    const key = `nodes[${index}].indexes[${j}]`;
    const parsed = parseIndexStatement(sql);
    if (!parsed) {
      fail(key, `'${sql.slice(0, 80)}' is not one CREATE INDEX statement with a name`, 'write it as CREATE [UNIQUE] INDEX name ON schema.table USING method (columns), one statement per entry.');
    }
    let database = typeof ix === 'string' ? null : ix.database;
    if (database === null) {
      const dbs = [...new Set(subscriptionDbs)];
      if (dbs.length > 1) fail(key, `${raw.name} has subscriptions in several databases (${dbs.join(', ')}), so the index's database is ambiguous`, `write it as { database: ${dbs[0]}, sql: "…" }.`);
      database = dbs[0] ?? null;
    }
    return { database, sql: sql.trim().replace(/;\s*$/, ''), ...parsed! };
  });
  return { ...base, kind: 'query', index, indexes, extensions: raw.extensions };
}

/** Name, schema and table of a `CREATE [UNIQUE] INDEX [CONCURRENTLY] [IF NOT EXISTS] name ON [ONLY] [schema.]table …`; null when it is not one. */
export function parseIndexStatement(sql: string): { name: string; schema: string; table: string } | null {
  const body = sql.trim().replace(/;\s*$/, '');
  if (body.includes(';')) return null;
  const m = /^CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?([a-z_][a-z0-9_]*)\s+ON\s+(?:ONLY\s+)?(?:([a-z_][a-z0-9_]*)\.)?([a-z_][a-z0-9_]*)\b/i.exec(body);
  if (!m || /^(ON|CONCURRENTLY|IF)$/i.test(m[1])) return null;
  return { name: m[1].toLowerCase(), schema: (m[2] ?? 'public').toLowerCase(), table: m[3].toLowerCase() };
}

function tableDecl(t: string | { name: string; where?: string; columns?: string[] }): TableDecl {
  const name = typeof t === 'string' ? t : t.name;
  const [schema, table] = name.includes('.') ? name.split('.') : ['public', name];
  return typeof t === 'string' ? { schema, name: table, where: null, columns: null } : { schema, name: table, where: t.where ?? null, columns: t.columns ?? null };
}

/** The subscriber a raw `to:` names. */
function target(file: string, raw: RawLogical['subscriptions'][number], key: string, queryNames: readonly string[], physicalNames: readonly string[]): SubscriberTarget {
  const fail = failer(file);
  const to = raw.to;
  if (typeof to === 'string') {
    if (physicalNames.includes(to)) fail(`${key}.to`, `${to} is a physical node of this cluster, which already has every row; a subscription goes to a node of kind query or to a dsn`, `add a node with kind: query and name it here, or give { dsn: …, passfile: … }.`);
    if (!queryNames.includes(to)) fail(`${key}.to`, `there is no query node '${to}'`, queryNames.length > 0 ? `use one of: ${queryNames.join(', ')}.` : 'declare one under nodes: with kind: query.');
    return { kind: 'node', node: to };
  }
  let url: URL;
  try {
    url = new URL(to.dsn);
  } catch {
    return fail(`${key}.to.dsn`, `'${to.dsn}' is not a libpq URI`, 'write it as postgresql://user@host:port/database.');
  }
  if (url.password) fail(`${key}.to.dsn`, 'the dsn carries a password', 'remove it: pgmaestro reads it from admin_passfile (or $PGPASSFILE, ~/.pgpass); a password in a configuration file ends up in backups and logs.');
  const host = decodeURIComponent(url.hostname).replace(/^\[|\]$/g, '');
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!host || !database || !url.username) fail(`${key}.to.dsn`, `'${to.dsn}' must name a user, a host and a database`, 'write it as postgresql://user@host:port/database.');
  let from = to.from ?? null;
  if (!from) {
    if (/^\d+\.\d+\.\d+\.\d+$/.test(host)) from = [`${host}/32`];
    else if (host === 'localhost') from = ['127.0.0.1/32', '::1/128'];
    else if (host.includes(':')) from = [`${host}/128`];
    else fail(`${key}.to`, `the subscriber's host '${host}' is a name, so pgmaestro cannot tell which address its connections come from`, 'set from: [CIDR] to the address (or network) the subscriber connects from.');
  }
  return {
    kind: 'dsn',
    dsn: to.dsn,
    host,
    port: url.port ? Number(url.port) : 5432,
    user: decodeURIComponent(url.username),
    database,
    passfile: to.passfile,
    adminPassfile: to.admin_passfile ?? null,
    from: from!,
  };
}

/** The subscriber's database of each raw subscription aimed at `node` (for the node's indexes). */
export function subscriptionDatabases(raw: RawLogical, node: string): string[] {
  return raw.subscriptions
    .filter((s) => s.to === node)
    .map((s) => s.database ?? raw.publications.find((p) => p.name === s.publication)?.database)
    .filter((d): d is string => typeof d === 'string');
}

/** Resolves and checks `logical:` against the nodes. */
export function resolveLogical(file: string, raw: RawConfig, physical: readonly NodeConfig[], query: readonly QueryNodeConfig[]): LogicalConfig {
  const fail = failer(file);
  const lg = raw.logical;
  const unique = (names: string[], what: string, key: (i: number) => string) =>
    names.forEach((n, i) => {
      const first = names.indexOf(n);
      if (first !== i) fail(key(i), `${what} name '${n}' is already used by ${key(first)}`, `give every ${what} its own name.`);
    });
  unique(lg.publications.map((p) => p.name), 'publication', (i) => `logical.publications[${i}].name`);
  unique(lg.subscriptions.map((s) => s.name), 'subscription', (i) => `logical.subscriptions[${i}].name`);

  const publications = lg.publications.map((p, i): PublicationConfig => {
    const key = `logical.publications[${i}]`;
    const given = [p.tables ? 'tables' : null, p.all_tables ? 'all_tables' : null, p.schemas ? 'schemas' : null].filter(Boolean);
    if (given.length !== 1) fail(key, given.length === 0 ? `publication ${p.name} says nothing to publish` : `publication ${p.name} gives both ${given.join(' and ')}`, 'give exactly one of tables: [...], all_tables: true or schemas: [...].');
    if (p.all_tables === false) fail(`${key}.all_tables`, 'all_tables: false publishes nothing', 'give tables: [...] or schemas: [...] instead.');
    const scope = p.tables ? ({ kind: 'tables', tables: p.tables.map(tableDecl) } as const) : p.schemas ? ({ kind: 'schemas', schemas: p.schemas } as const) : ({ kind: 'all' } as const);
    if (scope.kind === 'tables') {
      const names = scope.tables.map((t) => `${t.schema}.${t.name}`);
      unique(names, 'table', (j) => `${key}.tables[${j}]`);
    }
    return { name: p.name, database: p.database, scope, publish: [...new Set(p.publish)] };
  });

  const queryNames = query.map((n) => n.name);
  const subscriptions = lg.subscriptions.map((s, i): SubscriptionConfig => {
    const key = `logical.subscriptions[${i}]`;
    const pub = publications.find((p) => p.name === s.publication);
    if (!pub) {
      fail(`${key}.publication`, `subscription ${s.name} names publication '${s.publication}', which is not declared`, publications.length > 0 ? `declare it under logical.publications, or use one of: ${publications.map((p) => p.name).join(', ')}.` : 'declare it under logical.publications.');
    }
    const t = target(file, s, key, queryNames, physical.map((n) => n.name));
    let database = s.database ?? pub!.database;
    if (t.kind === 'dsn') {
      if (s.database && s.database !== t.database) fail(`${key}.database`, `database ${s.database} differs from the dsn's database ${t.database}`, 'name the database in the dsn only.');
      database = t.database;
    }
    return { name: s.name, publication: s.publication, target: t, database, enabled: s.enabled };
  });

  // the same publication twice into one subscriber database would apply every change twice
  const seen = new Map<string, number>();
  subscriptions.forEach((s, i) => {
    const where = s.target.kind === 'node' ? `node:${s.target.node}` : `dsn:${s.target.host}:${s.target.port}`;
    const k = `${where}/${s.database}/${s.publication}`;
    if (seen.has(k)) fail(`logical.subscriptions[${i}]`, `subscriptions ${subscriptions[seen.get(k)!].name} and ${s.name} both bring publication ${s.publication} into database ${s.database} of the same subscriber`, 'keep one of them.');
    seen.set(k, i);
  });
  const slotWarnBytes = sizeBytes(lg.slot_warn);
  return { role: lg.role, slotWarn: lg.slot_warn, slotWarnBytes, publications, subscriptions };
}

/** '512MB', '1GB' in bytes. */
export function sizeBytes(text: string): number {
  const m = /^(\d+)(kB|MB|GB|TB)$/.exec(text)!;
  return Number(m[1]) * { kB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 }[m[2] as 'kB' | 'MB' | 'GB' | 'TB'];
}
