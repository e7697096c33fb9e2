import type { ClusterContext } from '../cluster/context.js';
import type { ListenAddress, NodeConfig } from '../config/types.js';
import type { EndpointTarget } from './tcp.js';
import type { EndpointProcessStats } from './stats.js';

/** One endpoint as its process runs it (rw, ro or auto). */
export interface EndpointService {
  /** Listens and starts following the cluster; throws port.in_use and the like. */
  start(): Promise<void>;
  /** Reads the cluster state now and applies it; resolves with a sentence once applied. */
  refresh(): Promise<string>;
  stats(): Omit<EndpointProcessStats, 'kind' | 'pid' | 'since'>;
  /** Stops accepting and closes every connection. */
  close(): Promise<void>;
}

export interface ServiceDeps {
  readonly ctx: ClusterContext;
  readonly address: ListenAddress;
  /** A sentence for the cluster's event log (and the process log). */
  readonly event: (sentence: string) => void;
  readonly log: (line: string) => void;
}

/** Where an endpoint reaches a node: its service address. */
export function nodeTarget(node: NodeConfig): EndpointTarget {
  return { name: node.name, host: node.service, port: node.port };
}
