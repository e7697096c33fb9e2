import fs from 'node:fs';
import path from 'node:path';
import { LineCounter, parseDocument, isNode } from 'yaml';
import { Cron } from 'croner';
import { z } from 'zod';
import { PgmError } from '../errors.js';
import { configSchema, overrideSchema, type RawConfig, type RawOverride } from './schema.js';
import { parseCompression } from '../backup/codec.js';
import type { ClusterConfig, HostConfig, ListenAddress, NodeConfig, QueryNodeConfig } from './types.js';
import { queryNode, resolveLogical, subscriptionDatabases } from './load-logical.js';

export const DEFAULT_CONFIG_NAME = 'pgmaestro.yaml';

/** `-c FILE`, then `$PGMAESTRO_CONFIG`, then `./pgmaestro.yaml`. */
export function resolveConfigPath(flag: string | undefined): string {
  return path.resolve(flag ?? process.env.PGMAESTRO_CONFIG ?? DEFAULT_CONFIG_NAME);
}

/** Loads, validates and resolves the cluster configuration; throws a PgmError naming file, key path and what is allowed. */
export function loadConfig(file: string): ClusterConfig {
  const raw = readYaml(file, configSchema);
  const dir = path.dirname(file);
  const home = path.resolve(dir, raw.home ?? '.');

  const overrides: Record<string, RawOverride> = {};
  const all = raw.nodes.map((n): NodeConfig => {
    const overrideFile = path.join(dir, `pgmaestro.${n.name}.yaml`);
    const override = fs.existsSync(overrideFile) ? readYaml(overrideFile, overrideSchema) : { settings: {}, tags: undefined };
    if (fs.existsSync(overrideFile)) overrides[n.name] = override;
    return {
      name: n.name,
      port: n.port,
      dataDir: path.resolve(home, n.data_dir),
      service: n.service,
      replication: n.replication,
      admin: n.admin,
      settings: { ...n.settings, ...override.settings },
      nofailover: override.tags?.nofailover ?? n.tags.nofailover,
      priority: override.tags?.priority ?? n.tags.priority,
      overrideFile,
      overrideKeys: Object.keys(override.settings),
      vipInterface: n.vip_interface ?? null,
      host: n.host ?? null,
    };
  });
  const hosts = (raw.hosts ?? []).map((h): HostConfig => ({ name: h.name, agent: splitHostPort(h.agent) }));
  checkHosts(file, raw, hosts);

  checkCrossReferences(file, raw.nodes.map((n) => n.name), all, raw.primary);
  const { nodes, queryNodes } = splitKinds(file, raw, all);
  checkReplicaMinimums(file, raw.postgres.settings, nodes, raw.primary ?? nodes[0].name);
  for (const [kind, expr] of Object.entries(raw.backup.schedule)) {
    try {
      new Cron(expr, { paused: true });
    } catch (err) {
      throw new PgmError('config.invalid', `${file}: backup.schedule.${kind}: '${expr}' is not a cron expression (${(err as Error).message}).`, {
        hint: 'use five fields: minute hour day-of-month month day-of-week, e.g. "0 1 * * 0".',
      });
    }
  }
  try {
    parseCompression(raw.backup.compression);
  } catch (err) {
    throw new PgmError('config.invalid', `${file}: ${(err as PgmError).message}`, { hint: (err as PgmError).hint });
  }
  if (raw.backup.repository.startsWith('s3://') && !/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/.test(raw.backup.repository)) {
    throw new PgmError('config.invalid', `${file}: backup.repository: '${raw.backup.repository}' is not s3://BUCKET/PREFIX with a valid bucket name.`, { hint: 'use lower-case letters, digits, dots and hyphens for the bucket, e.g. s3://pgm-backups/demo.' });
  }
  if (!['replica', 'primary'].includes(raw.backup.from) && !raw.nodes.some((n) => n.name === raw.backup.from)) {
    throw new PgmError('config.invalid', `${file}: backup.from: '${raw.backup.from}' is neither replica, primary nor a node of this cluster.`, {
      hint: `use replica, primary or one of: ${raw.nodes.map((n) => n.name).join(', ')}.`,
    });
  }

  const endpoints = {
    rw: parseListen(raw.endpoints.rw, all[0].port + 1000),
    ro: parseListen(raw.endpoints.ro, all[0].port + 1001),
    auto: parseListen(raw.endpoints.auto, all[0].port + 1002),
  };
  const consoleAt = parseListen(raw.endpoints.console === 'off' ? false : raw.endpoints.console, all[0].port + 2000);
  const queryAt = raw.endpoints.query === 'off' || (queryNodes.length === 0 && raw.endpoints.query === undefined) ? null : parseListen(raw.endpoints.query, all[0].port + 1003);
  checkListeners(file, all, { ...endpoints, console: consoleAt, query: queryAt });
  if ((raw.endpoints.tls_cert === undefined) !== (raw.endpoints.tls_key === undefined)) {
    throw new PgmError('config.invalid', `${file}: endpoints.${raw.endpoints.tls_cert === undefined ? 'tls_key' : 'tls_cert'}: set without ${raw.endpoints.tls_cert === undefined ? 'tls_cert' : 'tls_key'}.`, {
      hint: 'set both endpoints.tls_cert and endpoints.tls_key, or neither (then secrets/server.crt and server.key are used when they exist).',
    });
  }
  const logical = resolveLogical(file, raw, nodes, queryNodes);
  for (const name of [raw.postgres.superuser, raw.postgres.replication_user]) {
    if (logical.role === name) {
      throw new PgmError('config.invalid', `${file}: logical.role: '${name}' is already the cluster's ${name === raw.postgres.superuser ? 'superuser' : 'replication user'}; subscribers get a role of their own with the least privileges.`, {
        hint: 'choose another name, or remove the key for the default pgm_logical.',
        data: { file, keyPath: 'logical.role' },
      });
    }
  }

  const cfg: ClusterConfig = {
    file,
    dir,
    home,
    cluster: raw.cluster,
    initialPrimary: raw.primary ?? nodes[0].name,
    clients: raw.clients,
    binDir: raw.postgres.bin_dir,
    osUser: raw.postgres.os_user,
    superuser: raw.postgres.superuser,
    replicationUser: raw.postgres.replication_user,
    settings: raw.postgres.settings,
    backup: {
      repository: raw.backup.repository.startsWith('s3://') ? raw.backup.repository : path.resolve(home, raw.backup.repository),
      compression: raw.backup.compression,
      processMax: raw.backup.process_max,
      walFlushIntervalMs: shortDurationMs(raw.backup.wal_flush_interval),
      s3: {
        endpoint: raw.backup.s3?.endpoint,
        region: raw.backup.s3?.region ?? 'us-east-1',
        credentialsFile: raw.backup.s3?.credentials_file === undefined ? undefined : path.resolve(home, raw.backup.s3.credentials_file),
        pathStyle: raw.backup.s3?.path_style ?? false,
        timeoutMs: shortDurationMs(raw.backup.s3?.timeout ?? '30s'),
      },
      retention: raw.backup.retention,
      retentionMs: durationMs(raw.backup.retention),
      from: raw.backup.from,
      walArchive: raw.backup.wal_archive,
      schedule: raw.backup.schedule,
    },
    ha: {
      failoverTimeoutMs: shortDurationMs(raw.ha.failover_timeout),
      restartFirst: raw.ha.restart_first,
      maximumLagOnFailover: raw.ha.maximum_lag_on_failover,
      autoRejoin: raw.ha.auto_rejoin,
      autoReclone: raw.ha.auto_reclone,
      quorum: raw.ha.synchronous === 'off' ? null : Number(raw.ha.synchronous.split(' ')[1]),
      isolation: raw.ha.isolation,
      vip: raw.ha.vip ?? null,
      loopWaitMs: shortDurationMs(raw.ha.loop_wait),
    },
    endpoints: {
      ...endpoints,
      console: consoleAt,
      maxLagBytes: raw.endpoints.max_lag,
      maxLagSeconds: raw.endpoints.max_lag_seconds,
      roDrainMs: shortDurationMs(raw.endpoints.ro_drain),
      roFallback: raw.endpoints.ro_fallback,
      holdMs: shortDurationMs(raw.endpoints.hold),
      poolSize: raw.endpoints.pool_size,
      tlsCert: raw.endpoints.tls_cert === undefined ? null : path.resolve(dir, raw.endpoints.tls_cert),
      tlsKey: raw.endpoints.tls_key === undefined ? null : path.resolve(dir, raw.endpoints.tls_key),
    },
    managerAddresses: [],
    nodes,
    queryNodes,
    logical,
    queryEndpoint: queryAt,
    dcs: raw.dcs
      ? {
          kind: 'etcd',
          etcd: {
            endpoints: raw.dcs.etcd.endpoints,
            tls: raw.dcs.etcd.tls ? { ca: path.resolve(dir, raw.dcs.etcd.tls.ca), cert: path.resolve(dir, raw.dcs.etcd.tls.cert), key: path.resolve(dir, raw.dcs.etcd.tls.key) } : null,
            ttlMs: shortDurationMs(raw.dcs.etcd.ttl),
            retryTimeoutMs: shortDurationMs(raw.dcs.etcd.retry_timeout),
            labMembers: raw.dcs.etcd.lab_members,
          },
        }
      : null,
    hosts,
    canonical: { config: raw, overrides },
  };
  checkTiming(file, cfg);
  return cfg;
}

function splitHostPort(text: string): { host: string; port: number } {
  const i = text.lastIndexOf(':');
  return { host: text.slice(0, i), port: Number(text.slice(i + 1)) };
}

/** Several hosts: every node names a configured host, host names and agent addresses are unique. */
function checkHosts(file: string, raw: RawConfig, hosts: HostConfig[]): void {
  const fail = (keyPath: string, message: string, hint: string) => {
    throw new PgmError('config.invalid', `${file}: ${keyPath}: ${message}.`, { hint, data: { file, keyPath } });
  };
  if (!raw.dcs) {
    if (raw.hosts) fail('hosts', 'hosts need a dcs section (state and leases in etcd)', 'add dcs: { etcd: { endpoints: [...] } }, or remove hosts to run one daemon on this machine.');
    const i = raw.nodes.findIndex((n) => n.host !== undefined);
    if (i >= 0) fail(`nodes[${i}].host`, 'a node host needs a dcs section (state and leases in etcd)', 'add dcs and hosts, or remove nodes[].host.');
    return;
  }
  if (hosts.length === 0) fail('hosts', 'with dcs, the hosts and their agents must be listed', 'add hosts: [{ name: a, agent: 10.0.3.1:8008 }, ...].');
  hosts.forEach((h, i) => {
    const j = hosts.findIndex((x) => x.name === h.name);
    if (j !== i) fail(`hosts[${i}].name`, `host name '${h.name}' is already used by hosts[${j}]`, 'give every host its own name.');
    const k = hosts.findIndex((x) => x.agent.host === h.agent.host && x.agent.port === h.agent.port);
    if (k !== i) fail(`hosts[${i}].agent`, `hosts ${hosts[k].name} and ${h.name} have the same agent address`, 'give every agent its own address.');
  });
  raw.nodes.forEach((n, i) => {
    if (n.kind === 'query') return; // refused with dcs, in its own sentence (splitKinds)
    if (n.host === undefined) fail(`nodes[${i}].host`, `node ${n.name} names no host, and with dcs every node runs on one`, `set nodes[${i}].host to one of: ${hosts.map((h) => h.name).join(', ')}.`);
    if (!hosts.some((h) => h.name === n.host)) fail(`nodes[${i}].host`, `'${n.host}' is not a configured host`, `use one of: ${hosts.map((h) => h.name).join(', ')}, or add it to hosts.`);
  });
}

/**
 * How the clocks compose. A primary's agent renews its lease every loop_wait;
 * one renewal may take up to retry_timeout. If it cannot renew, it fences its
 * PostgreSQL at (last renewal sent) + ttl - margin, where margin =
 * max(loop_wait, 1 s) is the time the fence itself may take; the controller
 * stops acting by the same rule. So that two renewals can fail before that
 * happens (Patroni's loop_wait + 2*retry_timeout <= ttl), we require
 * loop_wait + 2*retry_timeout <= ttl - margin. The monitor needs three failed
 * probes, one per loop, before a primary is dead: failover_timeout >= 3*loop_wait.
 */
function checkTiming(file: string, cfg: ClusterConfig): void {
  const L = cfg.ha.loopWaitMs;
  const s = (ms: number) => `${ms / 1000} s`;
  if (cfg.ha.failoverTimeoutMs < 3 * L) {
    throw new PgmError('config.invalid', `${file}: ha.failover_timeout: ${s(cfg.ha.failoverTimeoutMs)} is shorter than three monitor cycles (ha.loop_wait ${s(L)}), and a primary is declared dead only after three failed probes.`, {
      hint: `set ha.failover_timeout to at least ${s(3 * L)}, or shorten ha.loop_wait.`,
      data: { file, keyPath: 'ha.failover_timeout' },
    });
  }
  if (!cfg.dcs) return;
  const { ttlMs: T, retryTimeoutMs: R } = cfg.dcs.etcd;
  const margin = fenceMarginMs(cfg);
  if (L + 2 * R > T - margin) {
    throw new PgmError('config.invalid', `${file}: dcs.etcd.ttl: ${s(T)} is unsafe with ha.loop_wait ${s(L)} and dcs.etcd.retry_timeout ${s(R)}: loop_wait + 2 * retry_timeout (${s(L + 2 * R)}) must not exceed ttl minus the fencing margin of ${s(margin)} (${s(T - margin)}), or a primary would fence itself after a single slow etcd request.`, {
      hint: `raise dcs.etcd.ttl to at least ${s(L + 2 * R + margin)}, or shorten ha.loop_wait or dcs.etcd.retry_timeout.`,
      data: { file, keyPath: 'dcs.etcd.ttl' },
    });
  }
}

/** How long before its lease can expire a primary fences itself (and a controller stops acting): max(loop_wait, 1 s). */
export function fenceMarginMs(cfg: ClusterConfig): number {
  return Math.max(cfg.ha.loopWaitMs, 1000);
}

/**
 * Physical members apart from query nodes: everything that fails over,
 * clones or streams works on `nodes`, which never holds a query node.
 */
function splitKinds(file: string, raw: RawConfig, all: NodeConfig[]): { nodes: NodeConfig[]; queryNodes: QueryNodeConfig[] } {
  const nodes: NodeConfig[] = [];
  const queryNodes: QueryNodeConfig[] = [];
  raw.nodes.forEach((r, i) => {
    const key = `nodes[${i}]`;
    const fail = (k: string, message: string, hint: string): never => {
      throw new PgmError('config.invalid', `${file}: ${key}.${k}: ${message}.`, { hint, data: { file, keyPath: `${key}.${k}` } });
    };
    if (r.kind === 'physical') {
      if (r.indexes.length > 0) fail('indexes', `${r.name} is a physical node, a byte copy of its primary, so it cannot carry indexes of its own`, 'declare them on a node of kind query, or create them on the primary.');
      if (r.extensions.length > 0) fail('extensions', `${r.name} is a physical node; its extensions are the primary's`, 'create the extension on the primary, or move the key to a node of kind query.');
      nodes.push(all[i]);
      return;
    }
    if (raw.ha.isolation === 'netns') fail('kind', 'query nodes cannot run in the network-namespace lab (ha.isolation: netns) yet', 'use ha.isolation: none for a cluster with query nodes.');
    if (raw.dcs) fail('kind', 'query nodes cannot run in a multi-host cluster (dcs) yet: no agent provisions or watches them', 'subscribe an independent server by dsn (logical.subscriptions[].to: { dsn: ... }), or run the query node in a single-host cluster.');
    if (raw.primary === r.name) fail('kind', `${r.name} is named as primary but is a query node, which is never a member of the cluster`, 'name a physical node as primary.');
    if (raw.backup.from === r.name) fail('kind', `backup.from names ${r.name}, a query node; backups are taken from the cluster's members`, 'use replica, primary or a physical node.');
    queryNodes.push(queryNode(file, r, i, all[i], subscriptionDatabases(raw.logical, r.name)));
  });
  if (nodes.length === 0) {
    throw new PgmError('config.invalid', `${file}: nodes: every node is of kind query; a cluster needs at least one physical node to be its primary.`, { hint: 'add a node without kind: (or with kind: physical).', data: { file, keyPath: 'nodes' } });
  }
  return { nodes, queryNodes };
}

/** '500ms', '5s' in milliseconds. */
export function shortDurationMs(text: string): number {
  return text.endsWith('ms') ? Number(text.slice(0, -2)) : Number(text.slice(0, -1)) * 1000;
}

/** An endpoint's address: the default when unset, null when disabled (`false`). */
function parseListen(text: string | false | undefined, defaultPort: number): ListenAddress | null {
  if (text === false) return null;
  if (text === undefined) return { host: '127.0.0.1', port: defaultPort };
  const i = text.lastIndexOf(':');
  return { host: text.slice(0, i), port: Number(text.slice(i + 1)) };
}

/** The daemon's listeners must be valid ports and must not share a port with each other or with a node on the same address. */
function checkListeners(file: string, nodes: readonly NodeConfig[], listeners: Record<string, { host: string; port: number } | null>): void {
  const seen: { key: string; host: string; port: number }[] = nodes.map((n) => ({ key: `node ${n.name}`, host: n.service, port: n.port }));
  for (const [key, at] of Object.entries(listeners)) {
    if (!at) continue;
    if (!Number.isInteger(at.port) || at.port < 1 || at.port > 65535) {
      throw new PgmError('config.invalid', `${file}: endpoints.${key}: port ${at.port} is not a port number.`, { hint: 'use host:port with a port from 1 to 65535.', data: { file, keyPath: `endpoints.${key}` } });
    }
    const clash = seen.find((s) => s.port === at.port && (s.host === at.host || s.host === '0.0.0.0' || at.host === '0.0.0.0'));
    if (clash) {
      throw new PgmError('config.invalid', `${file}: endpoints.${key}: ${at.host}:${at.port} is also ${clash.key.startsWith('node ') ? clash.key : `the ${clash.key} endpoint`}'s port.`, {
        hint: `give endpoints.${key} a port of its own.`,
        data: { file, keyPath: `endpoints.${key}` },
      });
    }
    seen.push({ key, host: at.host, port: at.port });
  }
}

/** '36h', '21d', '3w' in milliseconds. */
export function durationMs(text: string): number {
  const n = Number(text.slice(0, -1));
  const unit = { h: 3600_000, d: 86400_000, w: 7 * 86400_000 }[text.slice(-1) as 'h' | 'd' | 'w'];
  return n * unit;
}

function checkCrossReferences(file: string, names: string[], nodes: NodeConfig[], primary: string | undefined): void {
  const fail = (keyPath: string, message: string, hint: string) => {
    throw new PgmError('config.invalid', `${file}: ${keyPath}: ${message}.`, { hint, data: { file, keyPath } });
  };
  names.forEach((name, i) => {
    const first = names.indexOf(name);
    if (first !== i) fail(`nodes[${i}].name`, `node name '${name}' is already used by nodes[${first}]`, 'give every node its own name.');
  });
  nodes.forEach((n, i) => {
    nodes.slice(0, i).forEach((m, j) => {
      if (n.host !== null && m.host !== null && n.host !== m.host) return; // separate machines share no port or directory
      const sharedHost = n.service === m.service || n.replication === m.replication || n.admin === m.admin;
      if (n.port === m.port && sharedHost) {
        fail(`nodes[${i}].port`, `nodes ${m.name} and ${n.name} both use port ${n.port} on the same address`, `give ${n.name} another port (for example ${n.port + 1 + i}).`);
      }
      if (n.dataDir === m.dataDir) {
        fail(`nodes[${i}].data_dir`, `nodes ${m.name} and ${n.name} share the data directory ${n.dataDir}`, 'give every node its own data_dir.');
      }
    });
  });
  if (primary !== undefined && !names.includes(primary)) {
    fail('primary', `'${primary}' is not a node of this cluster (nodes: ${names.join(', ')})`, 'name one of the nodes, or remove the key to use the first node.');
  }
}

/**
 * Settings a replica must have at least as high as its primary (PostgreSQL
 * stops a standby whose value is lower), with the value a node has when
 * nothing sets it (pgmaestro's baseline for max_wal_senders).
 */
export const REPLICA_MINIMUMS: Readonly<Record<string, number>> = {
  max_connections: 100,
  max_worker_processes: 8,
  max_wal_senders: 16,
  max_prepared_transactions: 0,
  max_locks_per_transaction: 64,
};

/** Refuses a node whose value of a REPLICA_MINIMUMS setting is below that of a node that can be its primary. */
function checkReplicaMinimums(file: string, shared: Record<string, unknown>, nodes: NodeConfig[], initialPrimary: string): void {
  for (const [name, dflt] of Object.entries(REPLICA_MINIMUMS)) {
    const value = (n: NodeConfig): number | null => {
      const v = n.settings[name] ?? shared[name] ?? dflt;
      const num = typeof v === 'number' ? v : Number(v);
      return Number.isInteger(num) ? num : null; // not a number: PostgreSQL's own check refuses it later
    };
    for (const p of nodes.filter((n) => !n.nofailover || n.name === initialPrimary)) {
      for (const r of nodes) {
        const vp = value(p);
        const vr = value(r);
        if (r === p || vp === null || vr === null || vr >= vp) continue;
        const from = r.overrideKeys.includes(name) ? r.overrideFile : name in r.settings ? `${file} (nodes[${nodes.indexOf(r)}].settings)` : `${file} (postgres.settings)`;
        throw new PgmError('config.invalid', `${r.name} would have ${name} = ${vr} (from ${from}), lower than the ${vp} of ${p.name}, which can be its primary; a replica with a lower ${name} than its primary stops during recovery.`, {
          hint: `give ${r.name} at least ${vp} (or the same ${name} on every node); nothing was changed.`,
          data: { file, setting: name, node: r.name },
        });
      }
    }
  }
}

/** Reads a YAML file and validates it against `schema`, turning every failure into one clear PgmError. */
export function readYaml<S extends z.ZodType>(file: string, schema: S): z.infer<S> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new PgmError('config.not_found', `cannot read the configuration file ${file} (${code ?? String(err)}).`, {
      hint: 'pass the right file with -c FILE, set PGMAESTRO_CONFIG, or create one with `pgmaestro init DIR`.',
      cause: err,
    });
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const pos = lineCounter.linePos(e.pos[0]);
    throw new PgmError('config.syntax', `${file} line ${pos.line}, column ${pos.col}: malformed YAML: ${e.message.split('\n')[0]}.`, {
      hint: 'fix the YAML syntax at that line (indentation, a missing colon or quote).',
      data: { file, line: pos.line },
    });
  }
  const parsed = schema.safeParse(doc.toJS() ?? {});
  if (parsed.success) return parsed.data;

  const issue = parsed.error.issues[0];
  const keyPath = [...issue.path];
  let detail: string;
  let hint: string;
  if (issue.code === 'unrecognized_keys') {
    keyPath.push(issue.keys[0]);
    const allowed = allowedKeys(schema, issue.path);
    detail = `unknown key '${issue.keys[0]}'`;
    hint = allowed.length > 0 ? `allowed keys here are: ${allowed.join(', ')}.` : 'remove the key.';
  } else if (issue.code === 'invalid_type') {
    const received = describeValue(valueAt(doc.toJS(), keyPath));
    detail = received === 'undefined' ? `required key is missing (expected ${issue.expected})` : `expected ${issue.expected}, got ${received}`;
    hint = `set ${formatPath(keyPath)} to a ${issue.expected}.`;
  } else {
    detail = issue.message;
    hint = `see the JSON Schema (schema/pgmaestro.schema.json) or \`pgmaestro init\` for what ${formatPath(keyPath)} allows.`;
  }
  const node = doc.getIn(issue.path as (string | number)[], true);
  const where = isNode(node) && node.range ? ` (line ${lineCounter.linePos(node.range[0]).line})` : '';
  throw new PgmError('config.invalid', `${file}: ${formatPath(keyPath)}${where}: ${detail}.`, {
    hint,
    data: { file, keyPath: formatPath(keyPath) },
  });
}

export function formatPath(p: readonly PropertyKey[]): string {
  if (p.length === 0) return '(top level)';
  return p.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? String(k) : `.${String(k)}`)).join('');
}

function valueAt(root: unknown, p: readonly PropertyKey[]): unknown {
  let v: unknown = root;
  for (const k of p) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}

function describeValue(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${JSON.stringify(v)}`;
}

/** Walks the schema along `p` to list the keys an object there accepts. */
function allowedKeys(schema: z.ZodType, p: readonly PropertyKey[]): string[] {
  let s: z.ZodType | undefined = schema;
  const unwrap = (t: z.ZodType): z.ZodType => {
    let cur = t;
    while (cur instanceof z.ZodDefault || cur instanceof z.ZodOptional) cur = cur.unwrap() as z.ZodType;
    return cur;
  };
  for (const k of p) {
    if (!s) return [];
    const u = unwrap(s);
    if (u instanceof z.ZodObject) s = (u.shape as Record<string, z.ZodType>)[String(k)];
    else if (u instanceof z.ZodArray) s = u.element as z.ZodType;
    else return [];
  }
  if (!s) return [];
  const u = unwrap(s);
  return u instanceof z.ZodObject ? Object.keys(u.shape) : [];
}
