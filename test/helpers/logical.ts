import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { TestCluster, tempDir } from './cluster.js';

/** Helpers of the logical replication tests: SQL in any database, a standalone server (the "any PostgreSQL by DSN"), a steady writer. */

export async function sqlAt<T extends pg.QueryResultRow = pg.QueryResultRow>(port: number, password: string, database: string, text: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database, connectionTimeoutMillis: 5000 });
  c.on('error', () => undefined);
  await c.connect();
  try {
    return (await c.query<T>(text, params)).rows;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** Count and checksum of a table's rows (md5 over them in id order): equal on two servers means the same rows. */
export async function fingerprint(port: number, password: string, database: string, table: string): Promise<{ count: number; sum: string }> {
  const [r] = await sqlAt<{ count: string; sum: string | null }>(port, password, database, `SELECT count(*)::text AS count, md5(coalesce(string_agg(t::text, '|' ORDER BY id), '')) AS sum FROM ${table} t`);
  return { count: Number(r.count), sum: r.sum ?? '' };
}

/** Appends YAML to the cluster's configuration. */
export function appendConfig(c: TestCluster, yaml: string): void {
  fs.appendFileSync(c.file, yaml.endsWith('\n') ? yaml : `${yaml}\n`);
}

export function replaceInConfig(c: TestCluster, from: string, to: string): void {
  const text = fs.readFileSync(c.file, 'utf8');
  if (!text.includes(from)) throw new Error(`config has no ${from}`);
  fs.writeFileSync(c.file, text.replace(from, to));
}

/** Inserts rows one by one through `port` until stopped, retrying across a change of primary; returns how many inserts were acknowledged. */
export function steadyWriter(port: number, password: string, database: string, sql: string): { stop(): Promise<number> } {
  let stopping = false;
  let acked = 0;
  const done = (async () => {
    let c: pg.Client | null = null;
    let i = 0;
    while (!stopping) {
      try {
        if (!c) {
          c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database, connectionTimeoutMillis: 3000 });
          c.on('error', () => undefined);
          await c.connect();
        }
        await c.query(sql, [`w${i++}`]);
        acked++;
      } catch {
        await c?.end().catch(() => undefined);
        c = null;
        await new Promise((r) => setTimeout(r, 100));
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    await c?.end().catch(() => undefined);
  })();
  return {
    async stop() {
      stopping = true;
      await done;
      return acked;
    },
  };
}

const isRoot = process.getuid?.() === 0;

/** A standalone PostgreSQL (Debian's 15 here), SCRAM only, run as the postgres OS user: the "any PostgreSQL given by DSN". */
export class StandaloneServer {
  readonly dir: string;
  readonly dataDir: string;
  readonly password = 'standalone-pw';
  private constructor(
    readonly bin: string,
    readonly port: number,
  ) {
    this.dir = tempDir('standalone');
    this.dataDir = path.join(this.dir, 'data');
  }

  static async start(bin: string, port: number): Promise<StandaloneServer> {
    const s = new StandaloneServer(bin, port);
    const uid = isRoot ? Number(execFileSync('id', ['-u', 'postgres']).toString()) : os.userInfo().uid;
    const gid = isRoot ? Number(execFileSync('id', ['-g', 'postgres']).toString()) : os.userInfo().gid;
    fs.chownSync(s.dir, uid, gid);
    const pw = path.join(s.dir, 'pw');
    fs.writeFileSync(pw, s.password + '\n', { mode: 0o600 });
    fs.chownSync(pw, uid, gid);
    s.run('initdb', ['-D', s.dataDir, '--auth=scram-sha-256', `--pwfile=${pw}`, '-U', 'postgres', '-E', 'UTF8', '--locale=C']);
    fs.writeFileSync(path.join(s.dataDir, 'pg_hba.conf'), 'host all postgres 127.0.0.1/32 scram-sha-256\n');
    fs.appendFileSync(path.join(s.dataDir, 'postgresql.conf'), [`port = ${port}`, "listen_addresses = '127.0.0.1'", "unix_socket_directories = ''", ''].join('\n'));
    s.run('pg_ctl', ['-w', '-t', '60', '-D', s.dataDir, '-l', path.join(s.dir, 'server.log'), 'start']);
    return s;
  }

  run(program: string, args: string[]): string {
    const file = path.join(this.bin, program);
    const [cmd, argv] = isRoot ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, args];
    return execFileSync(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 }).toString();
  }

  sql<T extends pg.QueryResultRow = pg.QueryResultRow>(database: string, text: string, params: unknown[] = []): Promise<T[]> {
    return sqlAt<T>(this.port, this.password, database, text, params);
  }

  /** A libpq passfile for pgmaestro to reach this server (0600). */
  passfile(): string {
    const f = path.join(this.dir, 'admin.pgpass');
    fs.writeFileSync(f, `127.0.0.1:${this.port}:*:postgres:${this.password}\n`, { mode: 0o600 });
    return f;
  }

  stop(): void {
    if (process.env.PGM_TEST_KEEP) return;
    try {
      this.run('pg_ctl', ['-w', '-D', this.dataDir, '-m', 'immediate', 'stop']);
    } catch {
      // not running
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
