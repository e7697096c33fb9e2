import net from 'node:net';
import pg from 'pg';
import type { NodeConfig } from '../config/types.js';
import { parseLsn } from '../postgres/lsn.js';
import type { ClusterContext } from '../cluster/context.js';
import type { NodeInspection } from '../cluster/node-control.js';
import type { Secrets } from '../cluster/secrets.js';
import type { NodeObservation } from './observations.js';

/** A probe answering within this is "ok"; a later answer (up to the hard limit) is "slow but alive". */
const SQL_OK_MS = 1000;
const SQL_HARD_MS = 4000;
const TCP_MS = 1000;

/**
 * Observes one node: can its host be reached at all (TCP to its port: a
 * refusal is an answer), is its postmaster alive (only when the host can be
 * inspected), and what its SQL says — role, WAL positions, the WAL
 * receiver's state. On the primary the probe also commits an empty
 * transaction: a heartbeat in the WAL, so replicas hear an idle primary.
 */
export async function observe(ctx: ClusterContext, node: NodeConfig, secrets: Secrets, fenced: boolean, inspection?: NodeInspection): Promise<NodeObservation> {
  const [tcp, host] = await Promise.all([tcpAnswers(node.admin, node.port), inspection ?? ctx.control(node).inspect()]);
  // Locally, the pid is known whatever the network says; a lab host cut off the
  // bridge must still look unreachable, so a local answer alone proves nothing.
  const hostReachable = tcp || (host.reachable && ctx.control(node).kind === 'remote');
  const base = {
    name: node.name,
    hostReachable,
    postmasterAlive: hostReachable && host.reachable ? host.pid !== null : null,
    nofailover: node.nofailover,
    priority: node.priority,
    fenced,
  };
  const failed = { ...base, sqlOk: false, probeMs: null, inRecovery: null, walLsn: null, receiveLsn: null, replayLsn: null, upstreamStreaming: null, upstream: null, lastMsgAgeMs: null, timeline: null };
  if (!hostReachable) return failed; // SQL cannot answer either: keep the cycle short
  const started = Date.now();
  const client = new pg.Client({ host: node.admin, port: node.port, user: ctx.cfg.superuser, password: secrets.superuserPassword, database: 'postgres', connectionTimeoutMillis: SQL_HARD_MS, application_name: 'pgmaestro_monitor', options: '-c synchronous_commit=local' });
  client.on('error', () => undefined);
  const timer = setTimeout(() => void client.end().catch(() => undefined), SQL_HARD_MS);
  try {
    await client.connect();
    const rec = (await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0].r;
    if (!rec) {
      await client.query('SELECT txid_current()');
      const w = (await client.query<{ l: string; f: string }>('SELECT pg_current_wal_lsn()::text AS l, pg_walfile_name(pg_current_wal_lsn()) AS f')).rows[0];
      const probeMs = Date.now() - started;
      return { ...base, sqlOk: probeMs <= SQL_OK_MS, probeMs, inRecovery: false, walLsn: parseLsn(w.l), receiveLsn: null, replayLsn: null, upstreamStreaming: null, upstream: null, lastMsgAgeMs: null, timeline: parseInt(w.f.slice(0, 8), 16) };
    }
    const r = (
      await client.query<{ recv: string | null; replay: string | null; status: string | null; age: number | null; host: string | null; port: number | null; tli: number | null }>(
        `SELECT pg_last_wal_receive_lsn()::text AS recv, pg_last_wal_replay_lsn()::text AS replay, w.status,
                (EXTRACT(epoch FROM clock_timestamp() - w.last_msg_receipt_time) * 1000)::float8 AS age,
                w.sender_host AS host, w.sender_port AS port, w.received_tli AS tli
           FROM (SELECT 1) one LEFT JOIN pg_stat_wal_receiver w ON true`,
      )
    ).rows[0];
    const probeMs = Date.now() - started;
    const upstream = ctx.cfg.nodes.find((m) => m.port === r.port && [m.replication, m.service, m.admin].includes(r.host ?? ''));
    return {
      ...base,
      sqlOk: probeMs <= SQL_OK_MS,
      probeMs,
      inRecovery: true,
      walLsn: null,
      receiveLsn: r.recv ? parseLsn(r.recv) : null,
      replayLsn: r.replay ? parseLsn(r.replay) : null,
      upstreamStreaming: r.status === 'streaming',
      upstream: upstream?.name ?? null,
      lastMsgAgeMs: r.age,
      timeline: r.tli,
    };
  } catch {
    return failed;
  } finally {
    clearTimeout(timer);
    await client.end().catch(() => undefined);
  }
}

/** True when host:port answers TCP at all (accept or refuse); false on timeout or unreachable network. */
export function tcpAnswers(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (v: boolean) => {
      s.destroy();
      resolve(v);
    };
    s.setTimeout(TCP_MS, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED' || err.code === 'ECONNRESET'));
  });
}
