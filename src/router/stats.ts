import type { ClusterContext } from '../cluster/context.js';
import type { EndpointKind } from '../config/types.js';
import { askStats, enabledEndpoints, endpointProcess, formatAddress } from './processes.js';

/** What an endpoint process reports about itself over its control socket. */
export interface EndpointProcessStats {
  readonly kind: EndpointKind;
  readonly address: string;
  readonly pid: number;
  readonly since: string;
  /** The primary it forwards writes to; null while there is none. */
  readonly primary: string | null;
  readonly connections: { readonly current: number; readonly total: number };
  readonly bytes: { readonly from_clients: number; readonly to_clients: number };
  /** Routing decisions since the process started, counted by route (see EndpointStats). */
  readonly routes: Record<string, number>;
  /** Open server-side connections by node name. */
  readonly nodes: Record<string, number>;
  /** Per node: whether it takes reads now, or why not (ro and auto). */
  readonly replicas?: Record<string, string>;
}

/**
 * The seam for the console and /metrics: one entry per enabled endpoint, in
 * the order rw, ro, auto.
 *
 * - `kind`, `address` (`host:port`), `running`.
 * - `pid`, `since` (ISO time the process started), `restarts` (times the
 *   daemon restarted it after it died; kept across daemon restarts).
 * - `connections.current` (client connections open now), `connections.total`
 *   (accepted since the process started).
 * - `bytes.from_clients`, `bytes.to_clients` (since the process started).
 * - `routes`: decisions since the process started, by route. rw: `primary`,
 *   `refused` (no primary within `hold`, or it did not answer), and `held`
 *   (connections waiting for a primary right now). ro: `replica`, `primary`
 *   (the fallback), `refused`, `held`. auto: per transaction or statement
 *   outside one, `primary`, `replica`, `retried` (a read retried elsewhere),
 *   and `pinned` (sessions pinned to the primary for holding state).
 * - `nodes`: open connections to each node (server side) by node name.
 * - `primary`: the node it forwards writes to (null while there is none).
 * - `replicas`: per non-primary node, 'eligible' or why not (ro, auto).
 * The figures other than pid/since/restarts are null when the process does
 * not run or does not answer within 2 s.
 */
export interface EndpointStats {
  readonly kind: EndpointKind;
  readonly address: string;
  readonly running: boolean;
  readonly pid: number | null;
  readonly since: string | null;
  readonly restarts: number;
  readonly primary: string | null;
  readonly connections: { readonly current: number; readonly total: number } | null;
  readonly bytes: { readonly from_clients: number; readonly to_clients: number } | null;
  readonly routes: Record<string, number> | null;
  readonly nodes: Record<string, number> | null;
  readonly replicas: Record<string, string> | null;
}

export async function endpointStats(ctx: ClusterContext): Promise<EndpointStats[]> {
  return Promise.all(
    enabledEndpoints(ctx).map(async ({ kind, address }): Promise<EndpointStats> => {
      const proc = endpointProcess(ctx, kind);
      const s = proc.pid === null ? null : await askStats(ctx, kind);
      return {
        kind,
        address: formatAddress(address),
        running: proc.pid !== null,
        pid: proc.pid,
        since: s?.since ?? proc.since,
        restarts: proc.restarts,
        primary: s?.primary ?? null,
        connections: s?.connections ?? null,
        bytes: s?.bytes ?? null,
        routes: s?.routes ?? null,
        nodes: s?.nodes ?? null,
        replicas: s?.replicas ?? null,
      };
    }),
  );
}
