import type { ClusterContext } from '../cluster/context.js';
import type { QueryNodeConfig } from '../config/types.js';
import { Endpoint, type EndpointStats } from '../router/tcp.js';
import { tcpAnswers } from '../ha/probe.js';

/**
 * The read-only endpoint over the query nodes (`endpoints.query`, default
 * the first node's port + 1003).
 *
 * A seam, on purpose small: until the traffic work's process model lands
 * (issues 10/16: each endpoint kind a process of its own, `ro` balanced
 * over eligible servers), this is one more in-process TCP forwarder of the
 * daemon (router/tcp.ts) pointed at one query node that answers — the one
 * it used before while that one answers, else the first in the file. It
 * does not balance several query nodes yet; `query` becomes an endpoint
 * kind of router/processes.ts there and this file goes.
 */

/** The query node new connections go to, pure: stay with the current one while it answers. */
export function chooseQueryTarget(nodes: readonly { readonly name: string; readonly up: boolean }[], current: string | null): string | null {
  if (current !== null && nodes.some((n) => n.name === current && n.up)) return current;
  return nodes.find((n) => n.up)?.name ?? null;
}

export interface QueryEndpoint {
  readonly stats: EndpointStats;
  close(): Promise<void>;
}

/** Listens on endpoints.query and follows the query nodes (checked every `intervalMs`); null when there is none configured. */
export async function startQueryEndpoint(ctx: ClusterContext, log: (line: string) => void, intervalMs = 1000): Promise<QueryEndpoint | null> {
  const at = ctx.cfg.queryEndpoint;
  const nodes = ctx.cfg.queryNodes ?? [];
  if (!at || nodes.length === 0) return null;
  const endpoint = new Endpoint({ host: at.host, port: at.port, log: (s) => log(`query ${s}`) });
  await endpoint.listen();
  let current: string | null = null;
  let stopped = false;
  const check = async () => {
    const up = await Promise.all(nodes.map(async (n: QueryNodeConfig) => ({ name: n.name, up: await tcpAnswers(n.service, n.port) })));
    const next = chooseQueryTarget(up, current);
    if (next === current || stopped) return;
    const node = nodes.find((n) => n.name === next) ?? null;
    endpoint.setTarget(node ? { name: node.name, host: node.service, port: node.port } : null, node ? `query node ${node.name} answers` : 'no query node answers');
    current = next;
  };
  await check();
  const timer = setInterval(() => void check().catch(() => undefined), intervalMs);
  return {
    get stats() {
      return endpoint.stats;
    },
    async close() {
      stopped = true;
      clearInterval(timer);
      await endpoint.close();
    },
  };
}
