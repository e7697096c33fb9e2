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

/** A query node: an independent server fed by logical replication (never a member that can be promoted). */
export interface QueryNodeConfig extends NodeConfig {
  readonly kind: 'query';
  /** Its position in nodes[] of the file, for messages. */
  readonly index: number;
  readonly indexes: readonly IndexDecl[];
  readonly extensions: readonly string[];
}

/** A declared index of a query node; `database` null: the database of its subscriptions. */
export interface IndexDecl {
  readonly database: string | null;
  readonly sql: string;
  /** Parsed from the statement. */
  readonly name: string;
  readonly schema: string;
  readonly table: string;
}

export type PublishOp = 'insert' | 'update' | 'delete' | 'truncate';

export interface TableDecl {
  readonly schema: string;
  readonly name: string;
  /** Row filter (PostgreSQL 15+), as written. */
  readonly where: string | null;
  /** Column list (PostgreSQL 15+). */
  readonly columns: readonly string[] | null;
}

export type PublicationScope =
  | { readonly kind: 'tables'; readonly tables: readonly TableDecl[] }
  | { readonly kind: 'all' }
  | { readonly kind: 'schemas'; readonly schemas: readonly string[] };

export interface PublicationConfig {
  readonly name: string;
  readonly database: string;
  readonly scope: PublicationScope;
  readonly publish: readonly PublishOp[];
}

/** Where a subscription lives: a query node of this cluster, or any PostgreSQL given by DSN. */
export type SubscriberTarget =
  | { readonly kind: 'node'; readonly node: string }
  | {
      readonly kind: 'dsn';
      /** The DSN as written (no password). */
      readonly dsn: string;
      readonly host: string;
      readonly port: number;
      readonly user: string;
      readonly database: string;
      /** On the subscriber's host: the file its server reads the replication role's password from. */
      readonly passfile: string;
      /** pgmaestro's passfile for the DSN (null: $PGPASSFILE, then ~/.pgpass). */
      readonly adminPassfile: string | null;
      /** CIDRs the subscriber connects from (pg_hba of the publisher). */
      readonly from: readonly string[];
    };

export interface SubscriptionConfig {
  readonly name: string;
  readonly publication: string;
  readonly target: SubscriberTarget;
  /** Database on the subscriber. */
  readonly database: string;
  readonly enabled: boolean;
}

export interface LogicalConfig {
  readonly role: string;
  readonly slotWarn: string;
  readonly slotWarnBytes: number;
  readonly publications: readonly PublicationConfig[];
  readonly subscriptions: readonly SubscriptionConfig[];
}

export interface BackupConfig {
  /** Absolute path of the repository directory, or s3://BUCKET/PREFIX. */
  readonly repository: string;
  /** 'none', 'gzip', 'lz4', 'zstd', optionally with ':level'. */
  readonly compression: string;
  readonly processMax: number;
  readonly walFlushIntervalMs: number;
  readonly s3: { readonly endpoint?: string; readonly region: string; readonly credentialsFile?: string; readonly pathStyle: boolean; readonly timeoutMs: number };
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
  /** The physical members: the primary and its streaming replicas. Query nodes are not among them. */
  readonly nodes: readonly NodeConfig[];
  /** Nodes of kind query (absent: none). */
  readonly queryNodes?: readonly QueryNodeConfig[];
  /** Publications and subscriptions (absent: none). */
  readonly logical?: LogicalConfig;
  /** The read-only endpoint over the query nodes; null or absent when there is none. */
  readonly queryEndpoint?: { readonly host: string; readonly port: number } | null;
  /** Several hosts: state and leases in etcd; null in the single-daemon mode. */
  readonly dcs: DcsConfig | null;
  readonly hosts: readonly HostConfig[];
  /**
   * The configuration as written (defaults applied, paths as in the file) and
   * every node's override file: what every host must agree on, compared by checksum.
   */
  readonly canonical: Readonly<Record<string, unknown>>;
}
