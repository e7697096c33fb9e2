import fs from 'node:fs';
import path from 'node:path';
import { PgmError } from '../errors.js';
import { portFree } from '../cluster/ports.js';
import { SYSTEM_DIR } from '../postgres/embedded-copy.js';
import { blockingDir, lookupOsUser } from '../postgres/osuser.js';
import { DEFAULT_CONFIG_NAME } from './load.js';

export interface InitOptions {
  readonly replicas: number;
  /** When absent, 5432 if free, else the first free block above it. */
  readonly portBase?: number;
  readonly binDir?: string;
  readonly cluster?: string;
  /** 'etcd': a multi-host lab: every node on its own host (a network namespace) with its agent, three etcd members. */
  readonly dcs?: string;
  readonly agentPort?: number;
  readonly etcdPort?: number;
}

export interface InitResult {
  readonly file: string;
  readonly portBase: number;
  /** Set when DIR is out of the PostgreSQL OS user's reach: where the cluster's own files will live instead, and why. */
  readonly home: { readonly dir: string; readonly blocked: string } | null;
}

/**
 * Writes DIR/pgmaestro.yaml: a commented example that works as is. Never
 * overwrites. As root, when the OS user that will run PostgreSQL cannot reach
 * DIR (a checkout in root's 0700 home), the configuration stays in DIR and
 * its `home` points at a fresh directory under /var/lib/pgmaestro.
 */
export async function initConfig(dir: string, opts: InitOptions): Promise<InitResult> {
  const file = path.resolve(dir, DEFAULT_CONFIG_NAME);
  if (fs.existsSync(file)) {
    throw new PgmError('config.exists', `${file} already exists; init never overwrites a configuration.`, {
      hint: 'edit that file, or choose another directory for a new cluster.',
    });
  }
  if (!Number.isInteger(opts.replicas) || opts.replicas < 0 || opts.replicas > 20) {
    throw new PgmError('usage', `--replicas must be a whole number from 0 to 20, not ${opts.replicas}.`, { hint: 'for example --replicas 2.' });
  }
  const count = opts.replicas + 1;
  const portBase = opts.portBase ?? (await findFreePorts(5432, count));
  if (!Number.isInteger(portBase) || portBase < 1024 || portBase + count > 65535) {
    throw new PgmError('usage', `--port-base must be a port from 1024 to ${65535 - count}, not ${opts.portBase}.`, { hint: 'for example --port-base 6432.' });
  }
  const cluster = opts.cluster ?? (path.basename(path.resolve(dir)).toLowerCase().replace(/[^a-z0-9_-]/g, '-').replace(/^[^a-z]+/, '') || 'main');
  const home = await homeOutOfReach(path.dirname(file), cluster);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  if (opts.dcs !== undefined && opts.dcs !== 'etcd') throw new PgmError('usage', `--dcs must be etcd, not ${opts.dcs}.`, { hint: 'use --dcs etcd, or leave it out for one daemon on this machine.' });
  const text = template(cluster, count, portBase, opts.binDir ?? 'embedded', home?.dir ?? null);
  fs.writeFileSync(file, opts.dcs ? multiHost(text, count, opts.agentPort ?? 8008, opts.etcdPort ?? 2379) : text, { flag: 'wx' });
  return { file, portBase, home };
}

/** Null when the OS user (the template's `postgres`) can reach `dir`; else a free home under SYSTEM_DIR. */
async function homeOutOfReach(dir: string, cluster: string): Promise<InitResult['home']> {
  if (process.getuid?.() !== 0) return null;
  const user = (await lookupOsUser('postgres')) ?? { name: 'postgres', uid: -1, gid: -1 };
  const blocked = blockingDir(path.join(dir, 'data'), user);
  if (blocked === null) return null;
  for (let i = 1; ; i++) {
    const candidate = path.join(SYSTEM_DIR, i === 1 ? cluster : `${cluster}-${i}`);
    if (!fs.existsSync(candidate) || fs.readdirSync(candidate).length === 0) return { dir: candidate, blocked };
  }
}

async function findFreePorts(start: number, count: number): Promise<number> {
  for (let base = start; base + count < 65535; base += 10) {
    let free = true;
    for (let p = base; p < base + count && free; p++) free = await portFree('127.0.0.1', p);
    if (free) return base;
  }
  throw new PgmError('port.in_use', 'found no free block of ports on 127.0.0.1.', { hint: 'pass --port-base P.' });
}

/** The lab's multi-host shape: each node on its own host, an agent per host, three etcd members the lab runs itself. */
function multiHost(text: string, count: number, agentPort: number, etcdPort: number): string {
  const hosts = Array.from({ length: count }, (_, i) => `  - { name: h${i + 1}, agent: "h${i + 1}:${agentPort}" }`).join('\n');
  const section = `# Several hosts (a lab on this machine: every host is a network namespace, root only).
# In the lab the host names below stand for the namespaces' addresses; on real
# hosts write their addresses (the agent's on the admin network).
ha:
  isolation: netns
  loop_wait: 1s              # the monitor's cycle and the lease renewal
  failover_timeout: 5s

dcs:
  etcd:
    endpoints: [http://e1:${etcdPort}, http://e2:${etcdPort}, http://e3:${etcdPort}]
    lab_members: true        # the lab runs these three members itself (peer port: client port + 1)
    ttl: 10s                 # primary and controller leases
    retry_timeout: 2s        # loop_wait + 2 * retry_timeout must fit in ttl minus max(loop_wait, 1 s)

hosts:
${hosts}

nodes:
`;
  let i = 0;
  return text.replace('\nnodes:\n', `\n${section}`).replace(/( {2}- name: node\d+\n)/g, (m) => `${m}    host: h${++i}\n`);
}

function template(cluster: string, count: number, portBase: number, binDir: string, home: string | null): string {
  const schema = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..', 'schema', 'pgmaestro.schema.json');
  const nodes = Array.from({ length: count }, (_, i) => {
    const name = `node${i + 1}`;
    const extra =
      i === 0
        ? ''
        : i === count - 1 && count > 2
          ? `    # a query server may get more memory than the others:\n    settings:\n      work_mem: 32MB\n`
          : '';
    return (
      `  - name: ${name}\n` +
      `    port: ${portBase + i}\n` +
      `    data_dir: data/${name}\n` +
      (i === 0 ? `    # service / replication / admin addresses default to 127.0.0.1:\n    # service: 10.0.1.11\n    # replication: 10.0.2.11\n    # admin: 10.0.3.11\n` : '') +
      extra +
      (i === 0 ? `    # tags: { nofailover: false, priority: 100 }\n` : '')
    );
  }).join('');
  return `# yaml-language-server: $schema=${schema}
# pgmaestro cluster configuration: one file for every server.
# Start it with:   pgmaestro up -c ${DEFAULT_CONFIG_NAME}
# Per-node overrides may also go in pgmaestro.<node>.yaml next to this file,
# holding "settings:" (and "tags:") for that node only.

cluster: ${cluster}
${
  home
    ? `
# The cluster's own files (data, secrets, logs, state, backups): this directory
# is out of reach of the OS user that runs PostgreSQL, so they live here.
home: ${home}
`
    : ''
}
# The node that is primary when the cluster is first created (default: the first node).
primary: node1

# Networks whose clients may connect to the databases (pg_hba.conf, scram-sha-256).
# Replication is always limited to the nodes' own replication addresses.
clients:
  - 127.0.0.1/32

postgres:
  # 'embedded' is PostgreSQL 18 from npm; any installation works, e.g. /usr/lib/postgresql/15/bin
  bin_dir: ${binDir}
  # when pgmaestro runs as root, PostgreSQL runs as this unprivileged OS user
  os_user: postgres
  # settings shared by every node (postgresql.conf)
  settings:
    shared_buffers: 128MB
    max_connections: 100
    log_min_duration_statement: 1000

# Disaster recovery: a full backup weekly, an incremental daily (PostgreSQL 17+),
# continuous WAL archiving by the daemon, and any moment of the window restorable.
backup:
  repository: backups        # relative to ${home ? 'home' : 'this file'}
  compression: none          # none | gzip[:1-9] | lz4 | zstd[:1-19]; an s3://BUCKET/PREFIX repository takes s3: { endpoint, credentials_file }
  retention: 21d             # recovery window: 36h, 21d, 3w ...
  from: replica              # take backups from a replica (spares the primary), 'primary' or a node name
  wal_archive: true
  schedule:
    full: "0 1 * * 0"        # cron: Sundays 01:00
    incr: "0 1 * * 1-6"      # cron: the other days 01:00

# Endpoints for applications (defaults: 127.0.0.1 and the first node's port + 1000, 1001, 1002; the
# console + 2000). Each may be host:port or false.
# endpoints:
#   rw: 127.0.0.1:${portBase + 1000}       # read-write: follows the primary
#   ro: 127.0.0.1:${portBase + 1001}       # read-only: balanced over replicas within max_lag
#   auto: 127.0.0.1:${portBase + 1002}     # routes reads to replicas and writes to the primary, read-your-writes
#   console: 127.0.0.1:${portBase + 2000}  # web console and /metrics (token in secrets/console.token)

# Logical replication of chosen tables to query nodes (kind: query) or any PostgreSQL by DSN:
# logical:
#   publications:  [{ name: sales, database: shop, tables: [public.orders] }]
#   subscriptions: [{ name: sales_query, publication: sales, to: query1 }]

nodes:
${nodes}`;
}
