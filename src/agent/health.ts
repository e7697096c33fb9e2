import type { NodeObservation } from '../ha/observations.js';

/**
 * Patroni-compatible health checks, for HAProxy or any load balancer: the
 * answer is 200 or 503 from the node's last local observation. Pure.
 *   /primary (/master, /leader)  runs as a primary and holds the primary lease (or keeps it in failsafe)
 *   /replica                     runs as a replica, answers, is not fenced; with ?lag=N at most N bytes behind
 *   /read-only                   answers (primary or replica)
 *   /health                      PostgreSQL is up and answers
 */
export interface HealthFacts {
  readonly obs: NodeObservation | null;
  readonly primaryAuthority: boolean;
  /** Bytes behind the primary's last known position; null when unknown. */
  readonly lagBytes: number | null;
}

export function healthStatus(check: string, query: URLSearchParams, f: HealthFacts): number | null {
  const o = f.obs;
  const up = o !== null && (o.sqlOk || o.probeMs !== null);
  switch (check) {
    case '/primary':
    case '/master':
    case '/leader':
    case '/read-write':
      return up && o!.inRecovery === false && f.primaryAuthority && !o!.fenced ? 200 : 503;
    case '/replica':
    case '/standby': {
      if (!up || o!.inRecovery !== true || o!.fenced) return 503;
      const lag = query.get('lag');
      if (lag === null) return 200;
      const max = Number(lag);
      return f.lagBytes !== null && Number.isFinite(max) && f.lagBytes <= max ? 200 : 503;
    }
    case '/read-only':
      return up ? 200 : 503;
    case '/health':
    case '/liveness':
    case '/readiness':
      return up ? 200 : 503;
    default:
      return null;
  }
}
