import type { Settings } from './schema.js';

/** A node after loading: paths absolute, override file merged. */
export interface NodeConfig {
  readonly name: string;
  readonly port: number;
  readonly dataDir: string;
  readonly service: string;
  readonly replication: string;
  readonly admin: string;
  /** The node's own settings (inline, then its override file). */
  readonly settings: Settings;
  readonly nofailover: boolean;
  readonly priority: number;
  /** Where the node's override file is (whether or not it exists). */
  readonly overrideFile: string;
  /** The settings that came from the override file (they win over the inline ones). */
  readonly overrideKeys: readonly string[];
  readonly vipInterface: string | null;
  /** The host whose agent controls the node (multi-host); null without dcs. */
  readonly host: string | null;
}

/** A host of a multi-host cluster: where its agent listens (HTTPS, mutual TLS). */
export interface HostConfig {
  readonly name: string;
  readonly agent: { readonly host: string; readonly port: number };
}

export interface EtcdConfig {
  readonly endpoints: readonly string[];
  /** Absolute paths; null: plain HTTP to etcd. */
  readonly tls: { readonly ca: string; readonly cert: string; readonly key: string } | null;
  /** Primary and controller leases. */
  readonly ttlMs: number;
  /** One etcd request's timeout. */
  readonly retryTimeoutMs: number;
  /** Lab only: up runs the members itself, one per endpoint, in lab hosts named by the endpoints. */
  readonly labMembers: boolean;
}

export interface DcsConfig {
  readonly kind: 'etcd';
  readonly etcd: EtcdConfig;
}

export interface BackupConfig {
  /** Absolute path of the repository. */
  readonly repository: string;
  readonly compression: 'none' | 'gzip';
  /** The recovery window in milliseconds. */
  readonly retentionMs: number;
  readonly retention: string;
  /** 'replica', 'primary' or a node name. */
  readonly from: string;
  readonly walArchive: boolean;
  readonly schedule: { readonly full: string; readonly incr: string };
}

export interface HaConfig {
  readonly failoverTimeoutMs: number;
  readonly restartFirst: boolean;
  readonly maximumLagOnFailover: number;
  readonly autoRejoin: boolean;
  readonly autoReclone: boolean;
  /** null when off. */
  readonly quorum: number | null;
  readonly isolation: 'none' | 'netns';
  readonly vip: string | null;
  /** The monitor's cycle (probes, decision, lease renewal). */
  readonly loopWaitMs: number;
}

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

export type EndpointKind = 'rw' | 'ro' | 'auto';
export const ENDPOINT_KINDS: readonly EndpointKind[] = ['rw', 'ro', 'auto'];

/** The application endpoints; each listens unless disabled (null). */
export interface EndpointsConfig {
  readonly rw: ListenAddress | null;
  readonly ro: ListenAddress | null;
  readonly auto: ListenAddress | null;
  readonly maxLagBytes: number;
  readonly maxLagSeconds: number;
  readonly roDrainMs: number;
  readonly roFallback: 'primary' | 'refuse';
  readonly holdMs: number;
  readonly poolSize: number;
  /** Absolute paths; null when the option is unset (then the cluster's secrets/server.{crt,key} are used when present). */
  readonly tlsCert: string | null;
  readonly tlsKey: string | null;
  /** Where the daemon serves the web console and /metrics; null when `endpoints.console: off`. */
  readonly console: ListenAddress | null;
}

export interface ClusterConfig {
  readonly file: string;
  /** Directory of the config file. */
  readonly dir: string;
  /** Directory of the cluster's own files (`home`, default `dir`); relative data directories and the repository resolve against it. */
  readonly home: string;
  readonly cluster: string;
  readonly initialPrimary: string;
  readonly clients: readonly string[];
  readonly binDir: string;
  readonly osUser: string;
  readonly superuser: string;
  readonly replicationUser: string;
  readonly settings: Settings;
  readonly backup: BackupConfig;
  readonly ha: HaConfig;
  /** Where pgmaestro itself connects from besides the nodes' admin addresses (the lab's gateway). */
  readonly managerAddresses: readonly string[];
  readonly endpoints: EndpointsConfig;
  readonly nodes: readonly NodeConfig[];
  /** Several hosts: state and leases in etcd; null in the single-daemon mode. */
  readonly dcs: DcsConfig | null;
  readonly hosts: readonly HostConfig[];
  /**
   * The configuration as written (defaults applied, paths as in the file) and
   * every node's override file: what every host must agree on, compared by checksum.
   */
  readonly canonical: Readonly<Record<string, unknown>>;
}
