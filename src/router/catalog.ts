import pg from 'pg';
import type { NodeConfig } from '../config/types.js';
import { parseVerifier, type Verifier } from '../protocol/scram-server.js';

/**
 * What the router asks the cluster's catalog, as the superuser, with short
 * caches: a role's SCRAM verifier (to authenticate clients without any
 * password) and the volatility of functions a read calls. Roles and
 * functions replicate, so any reachable node answers; the primary first.
 */
export interface RoleAuth {
  /** null: no such role, no SCRAM password, or it cannot log in (the client then gets "password authentication failed"). */
  readonly verifier: Verifier | null;
  readonly superuser: boolean;
}

const ROLE_TTL_MS = 5_000;
const FUNCTION_TTL_MS = 60_000;
/** A catalog connection unused this long is closed (a server shut down "smart" waits for it). */
const IDLE_MS = 3_000;

export class Catalog {
  private readonly clients = new Map<string, pg.Client>();
  private readonly lastUsed = new Map<string, number>();
  private idleTimer: NodeJS.Timeout | null = null;
  private readonly roles = new Map<string, { at: number; auth: RoleAuth }>();
  private readonly functions = new Map<string, { at: number; volatility: string }>();

  constructor(
    private readonly superuser: { user: string; password: string },
    /** The nodes to ask, best first (the primary, then replicas). */
    private readonly nodes: () => NodeConfig[],
  ) {}

  async role(user: string): Promise<RoleAuth> {
    const hit = this.roles.get(user);
    if (hit && Date.now() - hit.at < ROLE_TTL_MS) return hit.auth;
    const rows = await this.query<{ rolpassword: string | null; rolcanlogin: boolean; rolsuper: boolean; expired: boolean }>(
      'postgres',
      'SELECT rolpassword, rolcanlogin, rolsuper, coalesce(rolvaliduntil < now(), false) AS expired FROM pg_authid WHERE rolname = $1',
      [user],
    );
    const r = rows[0];
    const auth: RoleAuth = { verifier: r && r.rolcanlogin && !r.expired ? parseVerifier(r.rolpassword) : null, superuser: r?.rolsuper ?? false };
    this.roles.set(user, { at: Date.now(), auth });
    return auth;
  }

  /** anyVolatile's answer from the cache alone; null when a name is not cached (or stale). */
  volatileCached(database: string, names: readonly string[]): boolean | null {
    const now = Date.now();
    let any = false;
    for (const n of names) {
      const hit = this.functions.get(`${database}\0${n}`);
      if (!hit || now - hit.at > FUNCTION_TTL_MS) return null;
      if (hit.volatility !== 'i' && hit.volatility !== 's') any = true;
    }
    return any;
  }

  /** Whether any of `names` is volatile (or unknown) in `database`: then a read calling it goes to the primary. */
  async anyVolatile(database: string, names: readonly string[]): Promise<boolean> {
    if (names.length === 0) return false;
    const now = Date.now();
    const missing = names.filter((n) => {
      const hit = this.functions.get(`${database}\0${n}`);
      return !hit || now - hit.at > FUNCTION_TTL_MS;
    });
    if (missing.length > 0) {
      const rows = await this.query<{ proname: string; v: string }>(database, 'SELECT proname, max(provolatile::text) AS v FROM pg_proc WHERE proname = ANY($1::text[]) GROUP BY proname', [missing]);
      const found = new Map(rows.map((r) => [r.proname, r.v]));
      // An unknown function ('?') is treated as volatile: the query will fail anyway, on the primary.
      for (const n of missing) this.functions.set(`${database}\0${n}`, { at: now, volatility: found.get(n) ?? '?' });
    }
    return names.some((n) => {
      const v = this.functions.get(`${database}\0${n}`)?.volatility;
      return v !== 'i' && v !== 's';
    });
  }

  async close(): Promise<void> {
    if (this.idleTimer) clearInterval(this.idleTimer);
    this.idleTimer = null;
    await Promise.all([...this.clients.values()].map((c) => c.end().catch(() => undefined)));
    this.clients.clear();
  }

  /** Closes the connections nobody used for IDLE_MS. */
  private sweep(): void {
    const now = Date.now();
    for (const [key, c] of this.clients) {
      if (now - (this.lastUsed.get(key) ?? 0) < IDLE_MS) continue;
      this.clients.delete(key);
      c.end().catch(() => undefined);
    }
    if (this.clients.size === 0 && this.idleTimer) {
      clearInterval(this.idleTimer);
      this.idleTimer = null;
    }
  }

  private async query<T extends pg.QueryResultRow>(database: string, text: string, params: unknown[]): Promise<T[]> {
    let last: unknown = new Error('no node to ask');
    if (!this.idleTimer) {
      this.idleTimer = setInterval(() => this.sweep(), 1000);
      this.idleTimer.unref();
    }
    for (const n of this.nodes()) {
      const key = `${n.name}\0${database}`;
      this.lastUsed.set(key, Date.now());
      try {
        let c = this.clients.get(key);
        if (!c) {
          c = new pg.Client({
            host: n.admin,
            port: n.port,
            user: this.superuser.user,
            password: this.superuser.password,
            database,
            application_name: 'pgmaestro-router',
            connectionTimeoutMillis: 2000,
            query_timeout: 2000,
          });
          c.on('error', () => undefined);
          this.clients.set(key, c);
          await c.connect();
        }
        return (await c.query<T>(text, params)).rows;
      } catch (err) {
        last = err;
        this.clients.get(key)?.end().catch(() => undefined);
        this.clients.delete(key);
      }
    }
    throw last;
  }
}
