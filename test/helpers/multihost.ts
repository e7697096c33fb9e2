import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { startEtcd } from '../../src/agent/lab-processes.js';
import { openCluster } from '../../src/cluster/context.js';
import { applyLab, readLab, type LabRecord } from '../../src/cluster/lab.js';
import { loadConfig } from '../../src/config/load.js';
import type { ClusterConfig, NodeConfig } from '../../src/config/types.js';
import { EtcdClient } from '../../src/dcs/etcd-client.js';
import { EtcdStateStore } from '../../src/dcs/etcd.js';
import type { ClusterState, EventRecord } from '../../src/dcs/store.js';
import type { LabHost } from '../../src/ha/netns.js';
import { cli, tempDir, type CliResult, type StatusJson } from './cluster.js';
import { CLI, REPO } from './paths.js';

/**
 * A multi-host lab for the integration tests: every node on its own host (a
 * network namespace) with its agent, three etcd members in namespaces of
 * their own, built by the real `pgmaestro init --dcs etcd` and `up`. The
 * test reads etcd itself (state, leases, events) and reaches each node's
 * PostgreSQL directly, so its checks do not depend on the code under test.
 */

export interface LabOptions {
  readonly prefix: string;
  /** First node's port; agents and etcd members get their own. */
  readonly port: number;
  readonly agentPort: number;
  readonly etcdPort: number;
  readonly ttl: string;
  readonly loop: string;
  readonly retry: string;
  readonly failoverTimeout: string;
  readonly autoRejoin?: boolean;
  readonly restartFirst?: boolean;
  /** 'quorum 1' … */
  readonly synchronous?: string;
  /** A VIP (with prefix) carried on each host's eth0. */
  readonly vip?: string;
  /** A `logical:` section appended to the file as written (publications only: query nodes cannot run with dcs). */
  readonly logical?: string;
}

export type MultiStatus = Omit<StatusJson, 'nodes' | 'endpoints'> & {
  hosts: { name: string; agent: string; reachable: boolean; etcd?: string; netns?: string }[];
  controller: string | null;
  dcs: { healthy: boolean; members: { name: string; healthy: boolean; leader: boolean; endpoints: string[] }[] };
  endpoints: { rw?: string; rw_by_host?: Record<string, string>; console?: string };
  nodes: (StatusJson['nodes'][number] & { address: string; pending_restart: string[] })[];
};

let lastUpOutput = '';

export class MultiHostLab {
  /** What `up` said when the lab was made. */
  get upOutput(): string {
    return lastUpOutput;
  }

  readonly store: EtcdStateStore;
  private samplers: ChildProcess[] = [];

  private constructor(
    readonly dir: string,
    readonly file: string,
    readonly cfg: ClusterConfig,
    readonly lab: LabRecord,
  ) {
    this.store = new EtcdStateStore(new EtcdClient(cfg.dcs!.etcd, 5000), cfg.cluster, 'test');
  }

  static async up(o: LabOptions): Promise<MultiHostLab> {
    const dir = tempDir(o.prefix);
    const file = path.join(dir, 'pgmaestro.yaml');
    const r = await cli(['init', dir, '--port-base', String(o.port), '--dcs', 'etcd', '--agent-port', String(o.agentPort), '--etcd-port', String(o.etcdPort)]);
    assert.equal(r.code, 0, r.stderr);
    const ha = [
      `  failover_timeout: ${o.failoverTimeout}`,
      `  auto_rejoin: ${o.autoRejoin ?? true}`,
      `  restart_first: ${o.restartFirst ?? false}`,
      ...(o.synchronous ? [`  synchronous: ${o.synchronous}`] : []),
      ...(o.vip ? [`  vip: ${o.vip}`] : []),
    ].join('\n');
    let text = fs
      .readFileSync(file, 'utf8')
      .replace(/^cluster: .*$/m, `cluster: ${o.prefix}${crypto.randomBytes(3).toString('hex')}`)
      .replace(/^ {2}loop_wait: 1s .*$/m, `  loop_wait: ${o.loop}`)
      .replace(/^ {2}failover_timeout: 5s$/m, ha)
      .replace(/^ {4}ttl: 10s .*$/m, `    ttl: ${o.ttl}`)
      .replace(/^ {4}retry_timeout: 2s .*$/m, `    retry_timeout: ${o.retry}`)
      .replace('  wal_archive: true', '  wal_archive: false');
    if (o.vip) text = text.replace(/(    data_dir: data\/node\d\n)/g, '$1    vip_interface: eth0\n');
    if (o.logical) text += o.logical;
    fs.writeFileSync(file, text);
    const u = await cli(['up', '-c', file]);
    assert.equal(u.code, 0, u.stdout + u.stderr);
    lastUpOutput = u.stdout;
    const rec = readLab(path.join(dir, 'state'))!;
    const lab = new MultiHostLab(dir, file, applyLab(loadConfig(file), rec), rec);
    return lab;
  }

  run(...args: string[]): Promise<CliResult> {
    return cli([...args, '-c', this.file]);
  }

  async status(): Promise<MultiStatus> {
    const r = await this.run('status', '--json');
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as MultiStatus;
  }

  // ---- what etcd says ----------------------------------------------------------

  async state(): Promise<ClusterState> {
    return (await this.store.read())!;
  }

  async holder(): Promise<string | null> {
    return this.store.primaryHolder();
  }

  async controller(): Promise<string | null> {
    return (await this.store.client.get(this.store.keys.controller))?.value ?? null;
  }

  async agents(): Promise<string[]> {
    return (await this.store.client.list(this.store.keys.agents)).map((k) => k.key.slice(this.store.keys.agents.length));
  }

  async events(): Promise<EventRecord[]> {
    return this.store.events(2000);
  }

  /** Appends the test's own sentence (a fault it caused) to the event log. */
  async note(sentence: string): Promise<void> {
    await this.store.appendEvent(sentence);
  }

  // ---- the lab's parts ---------------------------------------------------------

  node(name: string): NodeConfig {
    return this.cfg.nodes.find((n) => n.name === name)!;
  }

  host(name: string): LabHost {
    return this.lab.hosts.find((h) => h.name === name)!;
  }

  /** The etcd members, by lab host name (e1, e2, e3), with their client endpoint. */
  members(): { name: string; endpoint: string }[] {
    const raw = (this.cfg.canonical.config as { dcs: { etcd: { endpoints: string[] } } }).dcs.etcd.endpoints;
    return raw.map((e, i) => ({ name: new URL(e).hostname, endpoint: this.cfg.dcs!.etcd.endpoints[i] }));
  }

  private pidFile(name: string): number | null {
    try {
      const pid = Number(fs.readFileSync(path.join(this.dir, 'state', name), 'utf8').trim());
      return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : null;
    } catch {
      return null;
    }
  }

  agentPid(host: string): number | null {
    return this.pidFile(`agent-${host}.pid`);
  }

  etcdPid(member: string): number | null {
    return this.pidFile(`etcd-${member}.pid`);
  }

  postmasterPid(node: string): number | null {
    try {
      const pid = Number(fs.readFileSync(path.join(this.node(node).dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
      return alive(pid) ? pid : null;
    } catch {
      return null;
    }
  }

  /** Starts a host's agent as the lab does (inside its namespace, detached, its pid where down finds it). */
  startAgent(host: string): void {
    const logFile = path.join(this.dir, 'logs', `agent-${host}.log`);
    const out = fs.openSync(logFile, 'a', 0o600);
    const child = spawn('ip', ['netns', 'exec', this.host(host).netns, process.execPath, '--import', 'tsx', CLI, 'agent', '--host', host, '-c', this.file], { detached: true, stdio: ['ignore', out, out], cwd: REPO });
    fs.closeSync(out);
    child.unref();
    fs.writeFileSync(path.join(this.dir, 'state', `agent-${host}.pid`), `${child.pid}\n`);
  }

  /** Starts the etcd members that do not run. */
  async startEtcd(): Promise<void> {
    const ctx = await openCluster(loadConfig(this.file), () => undefined);
    try {
      await startEtcd(ctx, () => undefined);
    } finally {
      await ctx.store.close();
    }
  }

  /** Cuts (or restores) a lab host's only link. */
  link(host: string, up: boolean): void {
    execFileSync('ip', ['link', 'set', this.host(host).hostIf, up ? 'up' : 'down']);
  }

  // ---- PostgreSQL --------------------------------------------------------------

  password(): string {
    return fs.readFileSync(path.join(this.dir, 'secrets', 'superuser.password'), 'utf8').trim();
  }

  async sql<T extends pg.QueryResultRow>(target: string | { host: string; port: number }, text: string, params: unknown[] = [], timeoutMs = 3000): Promise<T[]> {
    const t = typeof target === 'string' ? { host: this.node(target).admin, port: this.node(target).port } : target;
    const c = new pg.Client({ ...t, user: 'postgres', password: this.password(), database: 'postgres', connectionTimeoutMillis: Math.min(2000, timeoutMs), query_timeout: timeoutMs });
    c.on('error', () => undefined);
    await c.connect();
    try {
      return (await c.query<T>(text, params)).rows;
    } finally {
      await c.end().catch(() => undefined);
    }
  }

  /** The endpoint every agent serves on its host. */
  endpoint(host: string): string {
    const n = this.cfg.nodes.find((x) => x.host === host)!;
    return `${n.service}:${this.cfg.endpoints.rw!.port}`;
  }

  /**
   * The cluster has settled: the state's primary writable and holding its
   * lease, no step pending, every agent running, every other node a
   * streaming replica, every etcd member answering.
   */
  async settled(): Promise<string | null> {
    const st = await this.state();
    if (st.pending) return `a ${st.pending.kind} is in progress`;
    if (st.fenced.length > 0) return `${st.fenced.join(', ')} fenced`;
    if ((await this.holder()) !== st.primary) return `the primary lease is held by ${await this.holder()}, not ${st.primary}`;
    const agents = await this.agents();
    const missing = this.cfg.hosts.filter((h) => !agents.includes(h.name)).map((h) => h.name);
    if (missing.length > 0) return `no agent on ${missing.join(', ')}`;
    const streaming = await this.sql<{ n: string }>(st.primary, "SELECT count(*) AS n FROM pg_stat_replication WHERE state = 'streaming' AND application_name LIKE 'node%'", [], 1500).catch(() => null);
    if (!streaming) return `${st.primary} does not answer`;
    if (Number(streaming[0].n) < this.cfg.nodes.length - 1) return `only ${streaming[0].n} replicas stream`;
    const health = await this.store.client.endpointHealth();
    if (health.some((h) => !h.healthy)) return 'an etcd member does not answer';
    return null;
  }

  async until(what: string, check: () => Promise<boolean>, ms = 60_000): Promise<void> {
    await until(what, check, ms);
  }

  /** Waits until settled(); on a timeout, says why not and what the agents and the event log said last. */
  async settle(ms = 90_000): Promise<void> {
    let why: string | null = 'not looked yet';
    try {
      await until('the cluster settled', async () => (why = await this.settled().catch((e: Error) => e.message)) === null, ms);
    } catch (err) {
      const tails = this.cfg.hosts.map((h) => {
        const f = path.join(this.dir, 'logs', `agent-${h.name}.log`);
        const lines = fs.existsSync(f) ? fs.readFileSync(f, 'utf8').trim().split('\n').slice(-15) : [];
        return `--- agent ${h.name}\n${lines.join('\n')}`;
      });
      const ev = (await this.events().catch(() => [])).slice(-25).map((e) => `${e.at} [${e.host}] ${e.sentence}`);
      throw new Error(`${(err as Error).message} (last: ${why})\n--- events\n${ev.join('\n')}\n${tails.join('\n')}`);
    }
  }

  /** Samples every node's writability from inside its host until stopped; see writableOverlaps. */
  sampleWritable(): { stop: () => Promise<Samples> } {
    const samples: Samples = new Map();
    const env = { ...process.env, PGPASSFILE: path.join(this.dir, 'secrets', 'superuser.pgpass') };
    for (const n of this.cfg.nodes) {
      const list: Sample[] = [];
      samples.set(n.name, list);
      const child = spawn('ip', ['netns', 'exec', this.host(n.host!).netns, process.execPath, path.join(REPO, 'test', 'helpers', 'writable-sampler.mjs'), n.admin, String(n.port)], { stdio: ['ignore', 'pipe', 'ignore'], env, cwd: REPO });
      this.samplers.push(child);
      let buf = '';
      child.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        const lines = buf.split('\n');
        buf = lines.pop()!;
        for (const l of lines) {
          const [s, r, w] = l.split(' ').map(Number);
          list.push({ sent: s, received: r, writable: w === 1 });
        }
      });
    }
    return {
      stop: async () => {
        for (const c of this.samplers) c.kill('SIGKILL');
        this.samplers = [];
        return samples;
      },
    };
  }

  async destroy(): Promise<void> {
    for (const c of this.samplers) c.kill('SIGKILL');
    await this.store.close().catch(() => undefined);
    await cli(['down', '-c', this.file], { timeoutMs: 120_000 }).catch(() => undefined);
    // whatever down could not stop: the lab's namespaces are removed with what runs in them
    for (const h of this.lab.hosts) {
      execFileSync('sh', ['-c', `ip link set ${h.hostIf} up 2>/dev/null; for p in $(ip netns pids ${h.netns} 2>/dev/null); do kill -9 $p; done; ip netns del ${h.netns} 2>/dev/null || true`]);
    }
    execFileSync('sh', ['-c', `ip link del pgmbr${this.lab.index} 2>/dev/null || true`]);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface Sample {
  readonly sent: number;
  readonly received: number;
  readonly writable: boolean;
}
export type Samples = Map<string, Sample[]>;

/**
 * Moments when two nodes were writable together: a sample saying a node is
 * writable while another node's latest sample, taken within `freshMs`
 * before, also said so. Samplers are independent, so a hand-over faster
 * than `freshMs` would be counted too; pgmaestro's are never that fast (a
 * failover waits for the old lease, a switchover stops the old primary first).
 */
export function writableOverlaps(samples: Samples, freshMs = 150): { at: number; nodes: string[] }[] {
  const all = [...samples.entries()].flatMap(([node, list]) => list.map((s) => ({ node, ...s }))).sort((a, b) => a.received - b.received);
  const last = new Map<string, { writable: boolean; received: number }>();
  const out: { at: number; nodes: string[] }[] = [];
  for (const s of all) {
    last.set(s.node, { writable: s.writable, received: s.received });
    if (!s.writable) continue;
    const together = [...last.entries()].filter(([, v]) => v.writable && s.received - v.received <= freshMs).map(([n]) => n);
    if (together.length > 1) out.push({ at: s.received, nodes: together.sort() });
  }
  return out;
}

/** Writes through the given endpoints in turn, one connection per insert, recording what was acknowledged. */
export class Writer {
  /** Each acknowledged insert: when, through which endpoint, and which server (address) committed it. */
  readonly acked: { id: number; at: number; via: string; on: string }[] = [];
  private stopped = false;
  private done: Promise<void> | null = null;
  private id: number;

  constructor(
    private readonly lab: MultiHostLab,
    private readonly endpoints: () => string[],
    firstId = 1,
  ) {
    this.id = firstId;
  }

  start(): this {
    this.done = (async () => {
      while (!this.stopped) {
        for (const ep of this.endpoints()) {
          if (this.stopped) break;
          const [host, port] = ep.split(':');
          const mine = this.id++;
          try {
            const r = await this.lab.sql<{ a: string }>({ host, port: Number(port) }, 'INSERT INTO acked VALUES ($1) RETURNING host(inet_server_addr()) AS a', [mine], 3000);
            this.acked.push({ id: mine, at: Date.now(), via: ep, on: r[0].a });
          } catch {
            await new Promise((r) => setTimeout(r, 50));
          }
        }
      }
    })();
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

export async function until(what: string, check: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

export function kill(pid: number | null, sig: NodeJS.Signals = 'SIGKILL'): void {
  if (pid === null) return;
  try {
    process.kill(pid, sig);
  } catch {
    // gone
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
