import pg from 'pg';
import type { NodeConfig } from '../config/types.js';
import { parseLsn } from '../postgres/lsn.js';
import type { NodeView } from './balance.js';

/**
 * The endpoint process's own view of the nodes: one superuser connection per
 * node (admin address), asked every `intervalMs` for its role and WAL
 * positions. A node that does not answer within the timeout is unreachable
 * until it answers again. Each connection is replaced every `recycleMs`: a
 * server told to shut down "smart" (SIGTERM) waits for its sessions to end,
 * so a probe must not hold one for ever; the new connection is refused
 * ("shutting down") and the node turns unreachable. Nothing here decides
 * anything.
 */

const PROBE_SQL = `SELECT pg_is_in_recovery() AS rec,
  CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS cur,
  pg_last_wal_replay_lsn()::text AS replay,
  pg_last_wal_receive_lsn()::text AS recv,
  CASE WHEN pg_is_in_recovery() AND pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()
       THEN COALESCE(EXTRACT(epoch FROM now() - pg_last_xact_replay_timestamp())::float8, 0) ELSE 0 END AS delay`;

interface ProbeRow {
  rec: boolean;
  cur: string | null;
  replay: string | null;
  recv: string | null;
  delay: number | null;
}

export interface ProberOptions {
  readonly user: string;
  readonly password: string;
  readonly intervalMs?: number;
  readonly timeoutMs?: number;
  /** How long one probe connection is kept (default 5 s). */
  readonly recycleMs?: number;
  /** Called after every round with the views of all nodes, in configuration order. */
  readonly onRound: (views: NodeView[]) => void;
}

export class Prober {
  private readonly clients = new Map<string, { client: pg.Client; since: number }>();
  private readonly views = new Map<string, NodeView>();
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private readonly nodes: readonly NodeConfig[],
    private readonly opts: ProberOptions,
  ) {
    for (const n of nodes) this.views.set(n.name, unreachable(n.name));
  }

  get current(): NodeView[] {
    return this.nodes.map((n) => this.views.get(n.name)!);
  }

  /** Runs one round now, then one every interval. Resolves after the first round. */
  async start(): Promise<void> {
    await this.round();
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await Promise.all([...this.clients.values()].map((c) => c.client.end().catch(() => undefined)));
    this.clients.clear();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.round().finally(() => this.schedule());
    }, this.opts.intervalMs ?? 200);
  }

  private async round(): Promise<void> {
    await Promise.all(this.nodes.map(async (n) => this.views.set(n.name, await this.probe(n))));
    if (!this.stopped) this.opts.onRound(this.current);
  }

  private async probe(n: NodeConfig): Promise<NodeView> {
    const timeoutMs = this.opts.timeoutMs ?? 1000;
    const held = this.clients.get(n.name);
    if (held && Date.now() - held.since > (this.opts.recycleMs ?? 5000)) {
      this.clients.delete(n.name);
      held.client.end().catch(() => undefined);
    }
    try {
      let c = this.clients.get(n.name)?.client;
      if (!c) {
        c = new pg.Client({
          host: n.admin,
          port: n.port,
          user: this.opts.user,
          password: this.opts.password,
          database: 'postgres',
          application_name: 'pgmaestro-endpoint',
          connectionTimeoutMillis: timeoutMs,
          query_timeout: timeoutMs,
        });
        c.on('error', () => undefined); // surfaces on the next query
        this.clients.set(n.name, { client: c, since: Date.now() });
        await c.connect();
      }
      const r = (await c.query<ProbeRow>(PROBE_SQL)).rows[0];
      return {
        name: n.name,
        reachable: true,
        inRecovery: r.rec,
        currentLsn: r.cur ? parseLsn(r.cur) : null,
        replayLsn: r.replay ? parseLsn(r.replay) : null,
        receiveLsn: r.recv ? parseLsn(r.recv) : null,
        replayDelaySeconds: r.delay ?? 0,
      };
    } catch {
      const c = this.clients.get(n.name);
      this.clients.delete(n.name);
      c?.client.end().catch(() => undefined);
      return unreachable(n.name);
    }
  }
}

function unreachable(name: string): NodeView {
  return { name, reachable: false, inRecovery: null, currentLsn: null, replayLsn: null, receiveLsn: null, replayDelaySeconds: null };
}
