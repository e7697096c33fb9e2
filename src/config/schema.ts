import { z } from 'zod';

/**
 * The shape of `pgmaestro.yaml`. Every object is strict: an unknown key is an
 * error that names its path, so a typo never silently does nothing.
 */

const settingValue = z.union([z.string(), z.number(), z.boolean()]);
export const settingsSchema = z
  .record(z.string().regex(/^[a-z_][a-z0-9_.]*$/, 'a PostgreSQL parameter name (lower case, digits, _ and .)'), settingValue)
  .describe('postgresql.conf parameters');

/** A PostgreSQL name pgmaestro creates or looks up; lower case, so it never needs quoting. */
const pgName = z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'a lower-case PostgreSQL name (letters, digits and _, at most 63 characters)');

const address = z
  .string()
  .regex(/^[0-9A-Za-z.:-]+$/, 'a host name or IP address')
  .describe('host name or IP address');

const port = z.number().int().min(1).max(65535);

const hostName = z.string().regex(/^[a-z][a-z0-9]{0,9}$/, 'lower-case letters and digits, starting with a letter, at most 10 characters');
const hostPort = z.string().regex(/^[0-9A-Za-z.:-]+:\d{1,5}$/, 'host:port');

export const tagsSchema = z
  .object({
    nofailover: z.boolean().default(false).describe('never promote this node'),
    priority: z.number().int().min(0).default(100).describe('election tie-breaker: higher wins'),
  })
  .strict();

export const nodeSchema = z
  .object({
    name: z.string().regex(/^[a-z][a-z0-9_]{0,30}$/, 'lower-case letters, digits and _, starting with a letter, at most 31 characters'),
    port,
    data_dir: z.string().min(1).describe('data directory; relative paths are relative to home'),
    service: address.default('127.0.0.1').describe('address clients use'),
    replication: address.default('127.0.0.1').describe('address replicas stream from and to'),
    admin: address.default('127.0.0.1').describe('address pgmaestro administers the node on'),
    settings: settingsSchema.default({}).describe('settings that override the shared ones on this node only'),
    tags: tagsSchema.default({ nofailover: false, priority: 100 }),
    vip_interface: z.string().optional().describe('network interface that carries the virtual IP on this node'),
    kind: z
      .enum(['physical', 'query'])
      .default('physical')
      .describe("'physical': a member of the cluster (primary or streaming replica); 'query': an independent server fed by logical replication, with its own indexes"),
    indexes: z
      .array(
        z.union([
          z.string().describe('CREATE INDEX statement, in the database of the node’s subscriptions'),
          z.object({ database: pgName.describe('database of the index'), sql: z.string().describe('CREATE INDEX statement') }).strict(),
        ]),
      )
      .default([])
      .describe('query nodes only: indexes that exist only on this node, created after the initial copy'),
    extensions: z.array(z.string().regex(/^[a-z_][a-z0-9_-]{0,62}$/, 'an extension name')).default([]).describe('query nodes only: extensions its indexes need (pg_trgm for gin_trgm_ops is found by itself)'),
    host: hostName.optional().describe('the host (hosts[].name) whose agent controls this node; required with dcs'),
  })
  .strict();

export const postgresSchema = z
  .object({
    bin_dir: z.string().default('embedded').describe("'embedded' (PostgreSQL 18 from npm) or a directory holding postgres, pg_ctl and initdb"),
    os_user: z.string().default('postgres').describe('unprivileged OS user that runs PostgreSQL when pgmaestro runs as root'),
    superuser: z.string().regex(/^[a-z_][a-z0-9_]*$/).default('postgres'),
    replication_user: z.string().regex(/^[a-z_][a-z0-9_]*$/).default('replicator'),
    settings: settingsSchema.default({}).describe('settings shared by every node'),
  })
  .strict();

const duration = z
  .string()
  .regex(/^\d+(h|d|w)$/, 'a duration such as 36h, 21d or 3w')
  .describe('a duration: hours (h), days (d) or weeks (w)');

const seconds = z
  .string()
  .regex(/^\d+(\.\d+)?(ms|s)$/, 'a duration such as 500ms or 5s')
  .describe('a short duration: milliseconds (ms) or seconds (s)');

export const s3Schema = z
  .object({
    endpoint: z.string().url().optional().describe('S3-compatible endpoint, e.g. http://127.0.0.1:9000; omit for AWS itself'),
    region: z.string().default('us-east-1'),
    credentials_file: z.string().optional().describe('AWS shared-credentials file, mode 0600 (relative to the config file); else the standard AWS_* environment'),
    path_style: z.boolean().default(false).describe('path-style requests (most self-hosted S3 servers need this)'),
    timeout: seconds.default('30s').describe('a request that makes no progress for this long fails and is retried'),
  })
  .strict();

export const backupSchema = z
  .object({
    repository: z.string().default('backups').describe('backup repository: a directory (relative paths are relative to home) or s3://BUCKET/PREFIX'),
    compression: z
      .string()
      .regex(/^(none|gzip|lz4|zstd)(:\d+)?$/, 'none, gzip, lz4 or zstd, with an optional level (zstd:3)')
      .default('none')
      .describe('how stored files are compressed: none, gzip[:1-9], lz4, zstd[:1-19]'),
    process_max: z.number().int().min(1).max(64).default(2).describe('worker threads that compress and checksum backup files'),
    wal_flush_interval: seconds.default('1s').describe('the WAL segment in progress is made durable in the repository at least this often'),
    s3: s3Schema.optional().describe('S3 settings, for repository: s3://BUCKET/PREFIX'),
    retention: duration.default('21d').describe('recovery window: any moment inside it can be restored'),
    from: z.string().default('replica').describe("node backups are taken from: 'replica' (any streaming replica, else the primary), 'primary', or a node name"),
    wal_archive: z.boolean().default(true).describe('the daemon archives WAL continuously into the repository'),
    schedule: z
      .object({
        full: z.string().default('0 1 * * 0').describe('cron expression for full backups (default: Sundays 01:00)'),
        incr: z.string().default('0 1 * * 1-6').describe('cron expression for incremental backups (default: other days 01:00; PostgreSQL 17+)'),
      })
      .strict()
      .default({ full: '0 1 * * 0', incr: '0 1 * * 1-6' }),
  })
  .strict();

export const haSchema = z
  .object({
    failover_timeout: seconds.default('5s').describe('how long the primary must be unreachable (and unheard by every replica) before a failover'),
    restart_first: z.boolean().default(true).describe('restart a crashed primary in place (host reachable) before promoting'),
    maximum_lag_on_failover: z.number().int().min(0).default(1048576).describe('bytes: a replica further behind is never promoted'),
    auto_rejoin: z.boolean().default(false).describe('rebuild an old primary as a replica automatically after a failover'),
    auto_reclone: z.boolean().default(true).describe("rebuild a replica whose replication slot was lost (it can never stream again otherwise); off: up says so and rejoin does it"),
    synchronous: z
      .string()
      .regex(/^(off|quorum [1-9])$/, "'off' or 'quorum N'")
      .default('off')
      .describe("'quorum N': a commit is acknowledged once N replicas have it; failover then only promotes a replica holding every acknowledged commit"),
    isolation: z.enum(['none', 'netns']).default('none').describe("lab only (root): 'netns' runs each node in its own network namespace"),
    vip: z.string().optional().describe('virtual IP (CIDR) moved to the primary host: ip addr add + gratuitous ARP'),
    loop_wait: seconds.default('1s').describe("the monitor's cycle: probes, decision, lease renewal"),
  })
  .strict();

export const hostSchema = z
  .object({
    name: hostName,
    agent: hostPort.describe("the agent's address on the admin network (HTTPS, mutual TLS)"),
  })
  .strict();

export const etcdSchema = z
  .object({
    endpoints: z
      .array(z.string().regex(/^https?:\/\/[0-9A-Za-z.:-]+:\d{1,5}$/, 'http(s)://host:port'))
      .min(1)
      .describe('client URLs of the etcd members (v3 API)'),
    tls: z
      .object({ ca: z.string(), cert: z.string(), key: z.string() })
      .strict()
      .optional()
      .describe("TLS for etcd itself (files; relative paths are relative to the config file)"),
    ttl: seconds.default('10s').describe('primary and controller leases: a primary cut off from etcd refuses writes before this runs out, and nobody is promoted before it has'),
    retry_timeout: seconds.default('2s').describe('how long one etcd request may take before it counts as failed'),
    lab_members: z.boolean().default(false).describe("lab only (ha.isolation: netns): up runs one etcd member per endpoint, in a lab host named by the endpoint's host"),
  })
  .strict();

export const dcsSchema = z
  .object({
    etcd: etcdSchema,
  })
  .strict();

const listenAddress = z
  .union([z.string().regex(/^[0-9A-Za-z.:-]+:\d{1,5}$/, 'host:port'), z.literal(false)])
  .describe("host:port to listen on, or false to disable this endpoint");

export const endpointsSchema = z
  .object({
    rw: listenAddress.optional().describe('read-write endpoint: TCP to the current primary (default: 127.0.0.1 and the first node port + 1000)'),
    ro: listenAddress.optional().describe('read-only endpoint: TCP balanced over streaming replicas (default: first node port + 1001)'),
    auto: listenAddress.optional().describe('routing endpoint: speaks the PostgreSQL protocol, sends reads to replicas and writes to the primary (default: first node port + 1002)'),
    max_lag: z.number().int().min(0).default(16777216).describe('bytes: a replica further behind the primary gets no new ro or auto reads'),
    max_lag_seconds: z.number().min(0).default(10).describe('seconds: a replica whose replay is older than this (while it has WAL to replay) gets no new ro or auto reads'),
    ro_drain: seconds.default('10s').describe('how long connections to a replica that became ineligible (lagging, fenced, promoted) may go on before ro closes them'),
    ro_fallback: z.enum(['primary', 'refuse']).default('primary').describe('where ro sends new connections when no replica is eligible'),
    hold: seconds.default('10s').describe('how long a new connection (rw) or a write (auto) waits for a primary during a failover'),
    pool_size: z.number().int().min(1).max(1000).default(20).describe('auto: server connections per user, database and node'),
    tls_cert: z.string().optional().describe('auto: PEM server certificate offered to clients that ask for TLS (default: secrets/server.crt when it exists)'),
    tls_key: z.string().optional().describe('auto: PEM private key of tls_cert (default: secrets/server.key)'),
    console: z
      .union([z.string().regex(/^([0-9A-Za-z.:-]+:\d{1,5}|off)$/, "host:port or 'off'"), z.literal(false)])
      .optional()
      .describe("web console and /metrics (default: 127.0.0.1 and the first node port + 2000); 'off' (or false) disables it"),
    query: z
      .string()
      .regex(/^([0-9A-Za-z.:-]+:\d{1,5}|off)$/, "host:port or 'off'")
      .optional()
      .describe("read-only endpoint for the query nodes (default, when there are query nodes: 127.0.0.1 and the first node port + 1003); 'off' disables it"),
  })
  .strict();

const tableName = z
  .string()
  .regex(/^([a-z_][a-z0-9_$]{0,62}\.)?[a-z_][a-z0-9_$]{0,62}$/, 'a table as schema.table (or table, in public), lower case')
  .describe('schema.table');

export const publicationSchema = z
  .object({
    name: pgName,
    database: pgName.describe('database on the primary'),
    tables: z
      .array(
        z.union([
          tableName,
          z
            .object({
              name: tableName,
              where: z.string().min(1).optional().describe('row filter (PostgreSQL 15+): only rows for which it is true are published'),
              columns: z.array(pgName).min(1).optional().describe('column list (PostgreSQL 15+): only these columns are published'),
            })
            .strict(),
        ]),
      )
      .min(1)
      .optional()
      .describe('the tables to publish'),
    all_tables: z.boolean().optional().describe('publish every table of the database, present and future'),
    schemas: z.array(pgName).min(1).optional().describe('publish every table of these schemas, present and future (PostgreSQL 15+)'),
    publish: z
      .array(z.enum(['insert', 'update', 'delete', 'truncate']))
      .min(1)
      .default(['insert', 'update', 'delete', 'truncate'])
      .describe('which operations are published'),
  })
  .strict();

export const dsnTargetSchema = z
  .object({
    dsn: z.string().regex(/^postgres(ql)?:\/\//, 'a libpq URI: postgresql://user@host:port/database').describe('how pgmaestro reaches the subscriber: a superuser, no password in it'),
    passfile: z
      .string()
      .regex(/^\/[^'\n]*$/, 'an absolute path without quotes')
      .describe("absolute path on the subscriber's host where its server reads the replication role's password (pgmaestro writes it there, 0600)"),
    admin_passfile: z.string().min(1).optional().describe("libpq passfile with the password for dsn (default: $PGPASSFILE, then ~/.pgpass)"),
    from: z
      .array(z.string().regex(/^[0-9a-fA-F.:]+\/\d{1,3}$/, 'a CIDR such as 10.0.0.9/32'))
      .min(1)
      .optional()
      .describe("where the subscriber connects from (pg_hba.conf of the publisher); default: the dsn's host"),
  })
  .strict();

export const subscriptionSchema = z
  .object({
    name: pgName,
    publication: pgName.describe('a publication declared under logical.publications'),
    to: z.union([pgName.describe('a node of kind query'), dsnTargetSchema]),
    database: pgName.optional().describe("database on the subscriber (default: the publication's; a dsn names its own)"),
    enabled: z.boolean().default(true),
  })
  .strict();

const size = z
  .string()
  .regex(/^\d+(kB|MB|GB|TB)$/, 'a size such as 512MB or 1GB')
  .describe('a size: kB, MB, GB or TB');

export const logicalSchema = z
  .object({
    role: pgName.default('pgm_logical').describe('the role subscribers connect as: LOGIN REPLICATION, SELECT on the published tables, nothing else'),
    slot_warn: size.default('1GB').describe('warn when a logical slot holds back more WAL than this on the primary'),
    publications: z.array(publicationSchema).default([]),
    subscriptions: z.array(subscriptionSchema).default([]),
  })
  .strict();

export const configSchema = z
  .object({
    cluster: z.string().regex(/^[a-z][a-z0-9_-]{0,40}$/, 'lower-case letters, digits, _ and -, starting with a letter'),
    home: z
      .string()
      .min(1)
      .optional()
      .describe("directory of the cluster's own files (data, secrets, logs, state, repository when relative); default: the config file's directory; relative to it"),
    primary: z.string().optional().describe('node that is primary when the cluster is first created (default: the first node)'),
    clients: z
      .array(z.string().regex(/^[0-9a-fA-F.:]+\/\d{1,3}$/, 'a CIDR such as 10.0.0.0/24'))
      .default(['127.0.0.1/32'])
      .describe('networks allowed to connect to databases (pg_hba.conf); replication is always limited to the nodes'),
    postgres: postgresSchema.default({ bin_dir: 'embedded', os_user: 'postgres', superuser: 'postgres', replication_user: 'replicator', settings: {} }),
    ha: haSchema.default({ failover_timeout: '5s', restart_first: true, maximum_lag_on_failover: 1048576, auto_rejoin: false, auto_reclone: true, synchronous: 'off', isolation: 'none', loop_wait: '1s' }),
    dcs: dcsSchema.optional().describe('several hosts: state and leases in etcd, one agent per host (without it: one daemon, state on local disk)'),
    hosts: z.array(hostSchema).optional().describe('the hosts the nodes run on, each with its agent; required with dcs'),
    endpoints: endpointsSchema.default({ max_lag: 16777216, max_lag_seconds: 10, ro_drain: '10s', ro_fallback: 'primary', hold: '10s', pool_size: 20 }),
    backup: backupSchema.default({ repository: 'backups', compression: 'none', process_max: 2, wal_flush_interval: '1s', retention: '21d', from: 'replica', wal_archive: true, schedule: { full: '0 1 * * 0', incr: '0 1 * * 1-6' } }),
    logical: logicalSchema.default({ role: 'pgm_logical', slot_warn: '1GB', publications: [], subscriptions: [] }),
    nodes: z.array(nodeSchema).min(1),
  })
  .strict();

/** A node's own override file (`pgmaestro.<node>.yaml` next to the main file). */
export const overrideSchema = z
  .object({
    settings: settingsSchema.default({}),
    tags: tagsSchema.partial().optional(),
  })
  .strict();

export type RawConfig = z.infer<typeof configSchema>;
export type RawNode = z.infer<typeof nodeSchema>;
export type RawOverride = z.infer<typeof overrideSchema>;
export type Settings = z.infer<typeof settingsSchema>;
export type RawLogical = z.infer<typeof logicalSchema>;
