/**
 * Where a cluster lives in etcd. Everything is under /pgmaestro/<cluster>/;
 * what belongs to one group of nodes (a primary and its replicas) is under
 * groups/<group>/, so a configuration holding several groups adds keys, never
 * reshapes them.
 *
 *   config                       the configuration every agent must agree on (checksum + content)
 *   controller                   the host whose agent holds the controller lease
 *   paused                       present while `down` (or an operator) holds the controllers still
 *   agents/<host>                each running agent (its session lease)
 *   events/<ms>-<host>-<n>       the event log, one sentence per key
 *   locks/<kind>                 the cluster and repository locks (held under the holder's lease)
 *   groups/<g>/state             the group's ClusterState (primary, timeline, fenced, pending step)
 *   groups/<g>/primary           the node holding the group's primary lease
 *   groups/<g>/members/<node>    the node's last observation by its own agent
 *   groups/<g>/monitor           what the controller's monitor remembers while a failure is under way
 */
export interface GroupKeys {
  readonly prefix: string;
  readonly state: string;
  readonly monitor: string;
  readonly primary: string;
  readonly members: string;
  member(node: string): string;
}

export interface ClusterKeys {
  readonly root: string;
  readonly config: string;
  readonly controller: string;
  readonly paused: string;
  readonly agents: string;
  agent(host: string): string;
  readonly events: string;
  group(group: string): GroupKeys;
}

export function clusterKeys(cluster: string): ClusterKeys {
  const root = `/pgmaestro/${cluster}/`;
  return {
    root,
    config: `${root}config`,
    controller: `${root}controller`,
    paused: `${root}paused`,
    agents: `${root}agents/`,
    agent: (host) => `${root}agents/${host}`,
    events: `${root}events/`,
    group: (g) => ({
      prefix: `${root}groups/${g}/`,
      state: `${root}groups/${g}/state`,
      monitor: `${root}groups/${g}/monitor`,
      primary: `${root}groups/${g}/primary`,
      members: `${root}groups/${g}/members/`,
      member: (node) => `${root}groups/${g}/members/${node}`,
    }),
  };
}

/** The end of a prefix range: the prefix with its last byte incremented (etcd's range_end). */
export function prefixEnd(prefix: string): Buffer {
  const b = Buffer.from(prefix);
  const end = Buffer.from(b);
  end[end.length - 1]++;
  return end;
}
