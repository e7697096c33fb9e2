import fs from 'node:fs';
import type { ClusterConfig, NodeConfig } from '../config/types.js';
import { PgmError } from '../errors.js';
import { certPaths, loadIdentity, type TlsIdentity } from '../agent/certs.js';
import { RemoteNodeControl } from '../agent/remote-control.js';
import { EtcdClient } from '../dcs/etcd-client.js';
import { EtcdStateStore } from '../dcs/etcd.js';
import { EtcdLocks } from '../dcs/etcd-locks.js';
import type { NodeControl } from './node-control.js';

/** A one-shot command's etcd requests may take this long (the agents' take retry_timeout, which their leases are timed by). */
export const COMMAND_ETCD_BUDGET_MS = 5000;

/** The state store of a multi-host cluster: etcd, events recorded with `host` (an agent's; null for a command). */
export function etcdStore(cfg: ClusterConfig, host: string | null): EtcdStateStore {
  const e = cfg.dcs!.etcd;
  return new EtcdStateStore(new EtcdClient(e, host ? e.retryTimeoutMs : Math.max(e.retryTimeoutMs, COMMAND_ETCD_BUDGET_MS)), cfg.cluster, host);
}

/** The cluster and repository locks of a multi-host cluster: leases in etcd, named after the host acting (or this machine). */
export function etcdLocks(cfg: ClusterConfig, store: EtcdStateStore, host: string | null): EtcdLocks {
  return new EtcdLocks(store.client, store.keys.root, cfg.cluster, cfg.dcs!.etcd.ttlMs, host ?? undefined);
}

/** The host whose certificate this process presents: its own, $PGMAESTRO_HOST, or the first host whose key is in secrets/. */
export function identityHost(cfg: ClusterConfig, host: string | null): string {
  const wanted = host ?? process.env.PGMAESTRO_HOST ?? null;
  if (wanted) return wanted;
  const p = certPaths(cfg);
  const found = cfg.hosts.find((h) => fs.existsSync(p.key(h.name)));
  if (!found) {
    throw new PgmError('certs.invalid', `no host certificate of cluster ${cfg.cluster} is in ${p.ca.replace(/ca\.crt$/, '')}, so this command cannot reach the agents.`, {
      hint: `run \`pgmaestro certs -c ${cfg.file}\` and copy secrets/ to every host (set PGMAESTRO_HOST to choose which host's certificate to use).`,
    });
  }
  return found.name;
}

/** Node controls through the agents, presenting this process's certificate (loaded once, on first use). */
export function remoteControls(cfg: ClusterConfig, host: string | null): (node: NodeConfig) => NodeControl {
  let id: TlsIdentity | null = null;
  const identity = () => (id ??= loadIdentity(cfg, identityHost(cfg, host)));
  return (node) => new RemoteNodeControl(node, cfg.hosts.find((h) => h.name === node.host)!, identity);
}
