import fs from 'node:fs';
import path from 'node:path';
import type { ClusterConfig, NodeConfig } from '../config/types.js';
import { PgmError } from '../errors.js';
import type { RunAs } from '../postgres/exec.js';
import { run } from '../postgres/exec.js';
import { NetLab, netnsUnsupported, type LabHost } from '../ha/netns.js';
import { writeFileAtomic } from '../util/fsx.js';

/**
 * Lab isolation (`ha.isolation: netns`, root only): every node runs in its own
 * network namespace with its own address on a bridge, so one machine
 * rehearses separate hosts — partitions (a link set down) and the VIP are
 * real. The lab is built by `up`, recorded in state/lab.json, and removed by
 * `down`. While it exists, the nodes' addresses are the lab's.
 */
export interface LabRecord {
  readonly lab: string;
  readonly index: number;
  readonly gateway: string;
  readonly hosts: readonly LabHost[];
}

export function labFile(stateDir: string): string {
  return path.join(stateDir, 'lab.json');
}

/** 1 to 10 lower-case letters and digits, from the cluster's name. */
export function labName(cluster: string): string {
  return cluster.replace(/[^a-z0-9]/g, '').slice(-10) || 'pgmaestro';
}

export function readLab(stateDir: string): LabRecord | null {
  try {
    return JSON.parse(fs.readFileSync(labFile(stateDir), 'utf8')) as LabRecord;
  } catch {
    return null;
  }
}

/** The lab host a node runs on: its configured host (multi-host), else a host of its own name. */
export function labHostOf(node: NodeConfig): string {
  return node.host ?? node.name;
}

/** The lab's hosts: one per configured host (multi-host) or per node, and one per etcd member the lab runs. */
export function labHostNames(cfg: ClusterConfig): string[] {
  const hosts = cfg.dcs ? cfg.hosts.map((h) => h.name) : cfg.nodes.map((n) => n.name);
  const etcd = cfg.dcs?.etcd.labMembers ? cfg.dcs.etcd.endpoints.map((e) => new URL(e).hostname) : [];
  return [...new Set([...hosts, ...etcd])];
}

/**
 * The configuration as the lab makes it: each node at its host's namespace
 * address, each agent and etcd member at the address of the lab host it is
 * named after, pgmaestro connecting from the gateway.
 */
export function applyLab(cfg: ClusterConfig, lab: LabRecord): ClusterConfig {
  const addr = (name: string) => lab.hosts.find((x) => x.name === name)?.address;
  const nodes = cfg.nodes.map((n): NodeConfig => {
    const a = addr(labHostOf(n));
    return a ? { ...n, service: a, replication: a, admin: a } : n;
  });
  const hosts = cfg.hosts.map((h) => ({ ...h, agent: { host: addr(h.name) ?? h.agent.host, port: h.agent.port } }));
  const dcs = cfg.dcs && {
    ...cfg.dcs,
    etcd: {
      ...cfg.dcs.etcd,
      endpoints: cfg.dcs.etcd.endpoints.map((e) => {
        const u = new URL(e);
        const a = addr(u.hostname);
        return a ? `${u.protocol}//${a}:${u.port}` : e;
      }),
    },
  };
  return { ...cfg, nodes, hosts, dcs, managerAddresses: [...cfg.managerAddresses, lab.gateway] };
}

/** The user PostgreSQL runs as for `node`: inside its namespace in lab mode. */
export function nodeUser(user: RunAs, lab: LabRecord | null, node: NodeConfig): RunAs {
  const h = lab?.hosts.find((x) => x.name === labHostOf(node));
  return h ? { ...user, netns: h.netns } : user;
}

/** Builds the lab unless it exists (its namespaces present); returns its record. */
export async function ensureLab(cfg: ClusterConfig, stateDir: string): Promise<LabRecord> {
  const existing = readLab(stateDir);
  if (existing) {
    const list = (await run('ip', ['netns', 'list'])).stdout;
    if (existing.hosts.every((h) => list.includes(h.netns))) return existing;
  }
  const why = await netnsUnsupported();
  if (why) throw new PgmError('usage', `ha.isolation: netns cannot be used here: ${why}.`, { hint: 'run pgmaestro as root on Linux with iproute2, or set ha.isolation: none.' });
  fs.mkdirSync(stateDir, { recursive: true });
  const lab = await NetLab.create(labName(cfg.cluster), labHostNames(cfg), 1);
  const rec: LabRecord = { lab: lab.lab, index: lab.index, gateway: lab.gateway, hosts: lab.hosts };
  try {
    writeFileAtomic(labFile(stateDir), JSON.stringify(rec, null, 2) + '\n', 0o644);
  } catch (err) {
    await lab.destroy(); // unrecorded, nobody would ever remove it
    throw err;
  }
  return rec;
}

export async function destroyLab(stateDir: string): Promise<boolean> {
  const rec = readLab(stateDir);
  if (!rec) return false;
  await NetLab.attach(rec.lab, rec.index, rec.hosts).destroy();
  fs.rmSync(labFile(stateDir), { force: true });
  return true;
}
