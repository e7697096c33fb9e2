import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClusterContext } from '../cluster/context.js';
import { EtcdClient } from '../dcs/etcd-client.js';
import { PgmError } from '../errors.js';
import { agentCall } from './http.js';
import { loadIdentity } from './certs.js';
import { COMMAND_ETCD_BUDGET_MS, identityHost } from '../cluster/multihost.js';
import { processAlive } from '../postgres/fence.js';
import { guardFiles } from './guard.js';

const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * The lab's own processes in multi-host mode: one etcd member per endpoint
 * and one agent per host, each started inside its host's network namespace,
 * detached (they outlive the CLI), with a pid file in state/ and a log in
 * logs/. In production systemd runs the agents (`pgmaestro agent install`)
 * and etcd is the operator's.
 */
export interface LabProcess {
  readonly kind: 'etcd' | 'agent' | 'guard';
  readonly name: string;
  readonly pidFile: string;
  readonly logFile: string;
}

export function etcdProcesses(ctx: ClusterContext): LabProcess[] {
  if (!ctx.cfg.dcs?.etcd.labMembers || !ctx.lab) return [];
  return memberNames(ctx).map((name) => ({ kind: 'etcd', name, pidFile: path.join(ctx.paths.stateDir, `etcd-${name}.pid`), logFile: path.join(ctx.paths.logsDir, `etcd-${name}.log`) }));
}

export function agentProcesses(ctx: ClusterContext): LabProcess[] {
  if (!ctx.lab) return [];
  return ctx.cfg.hosts.map((h) => ({ kind: 'agent', name: h.name, pidFile: path.join(ctx.paths.stateDir, `agent-${h.name}.pid`), logFile: path.join(ctx.paths.logsDir, `agent-${h.name}.log`) }));
}

/** The hosts' guards (the agents start them; down stops what is left). */
export function guardProcesses(ctx: ClusterContext): LabProcess[] {
  if (!ctx.lab) return [];
  return ctx.cfg.hosts.map((h) => {
    const g = guardFiles(ctx.paths.stateDir, ctx.paths.logsDir, h.name);
    return { kind: 'guard', name: h.name, pidFile: g.pid, logFile: g.log };
  });
}

function memberNames(ctx: ClusterContext): string[] {
  // the configured endpoints name the lab hosts; ctx.cfg has them as addresses already
  const raw = (ctx.cfg.canonical.config as { dcs: { etcd: { endpoints: string[] } } }).dcs.etcd.endpoints;
  return raw.map((e) => new URL(e).hostname);
}

function netnsOf(ctx: ClusterContext, host: string): string {
  const h = ctx.lab!.hosts.find((x) => x.name === host);
  if (!h) throw new PgmError('cluster.state', `the lab has no host ${host}.`, { hint: 'run pgmaestro down, then up, to rebuild the lab.' });
  return h.netns;
}

/** Starts the etcd members that do not run, then waits until the cluster answers. */
export async function startEtcd(ctx: ClusterContext, log: (s: string) => void): Promise<void> {
  const procs = etcdProcesses(ctx);
  if (procs.length === 0) return;
  const names = memberNames(ctx);
  const urls = ctx.cfg.dcs!.etcd.endpoints.map((e) => new URL(e));
  const peer = (i: number) => `http://${urls[i].hostname}:${Number(urls[i].port) + 1}`;
  const initial = names.map((n, i) => `${n}=${peer(i)}`).join(',');
  for (const [i, p] of procs.entries()) {
    if (running(p)) continue;
    const dataDir = path.join(ctx.cfg.dir, 'dcs', p.name);
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const args = [
      '--name', p.name, '--data-dir', dataDir,
      '--listen-client-urls', `http://${urls[i].hostname}:${urls[i].port}`, '--advertise-client-urls', `http://${urls[i].hostname}:${urls[i].port}`,
      '--listen-peer-urls', peer(i), '--initial-advertise-peer-urls', peer(i),
      '--initial-cluster', initial, '--initial-cluster-token', `pgmaestro-${ctx.cfg.cluster}`, '--initial-cluster-state', 'new',
      '--heartbeat-interval', '100', '--election-timeout', '1000', '--logger', 'zap', '--log-outputs', 'stderr',
      // every agent writes its member keys each cycle: keep only the last thousand revisions
      '--auto-compaction-mode', 'revision', '--auto-compaction-retention', '1000',
    ];
    spawnDetached(p, ['ip', 'netns', 'exec', netnsOf(ctx, p.name), 'etcd', ...args]);
    log(`etcd member ${p.name}: started on ${urls[i].hostname}:${urls[i].port}`);
  }
  const client = new EtcdClient(ctx.cfg.dcs!.etcd, COMMAND_ETCD_BUDGET_MS);
  try {
    await until(60_000, async () => (await client.get(`/pgmaestro/${ctx.cfg.cluster}/config`).then(() => true).catch(() => false)), () => 'the lab etcd cluster did not answer within 60 s');
  } finally {
    client.close();
  }
}

/** Starts the agents that do not run (each in its host's namespace, all at once), then waits until each answers over mutual TLS. */
export async function startAgents(ctx: ClusterContext, log: (s: string) => void): Promise<void> {
  const id = loadIdentity(ctx.cfg, identityHost(ctx.cfg, null));
  const starting = agentProcesses(ctx).filter((p) => !running(p));
  for (const p of starting) spawnDetached(p, ['ip', 'netns', 'exec', netnsOf(ctx, p.name), process.execPath, ...process.execArgv, process.argv[1], 'agent', '--host', p.name, '-c', ctx.cfg.file]);
  await Promise.all(
    starting.map(async (p) => {
      const host = ctx.cfg.hosts.find((h) => h.name === p.name)!;
      await until(60_000, async () => {
        if (!running(p)) throw new PgmError('daemon.failed', `the agent of host ${p.name} exited: ${tail(p.logFile)}.`, { hint: `read ${p.logFile}.` });
        return agentCall(id, host, 'GET', '/health', undefined, 1000).then(() => true, () => false);
      }, () => `the agent of host ${p.name} did not answer within 60 s`);
      log(`agent of host ${p.name}: started on ${host.agent.host}:${host.agent.port}`);
    }),
  );
}

export async function stopAll(procs: LabProcess[], log: (s: string) => void): Promise<void> {
  for (const p of procs) {
    const pid = pidOf(p);
    if (pid === null) continue;
    signal(pid, 'SIGTERM');
    const deadline = Date.now() + 10_000;
    while (processAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (processAlive(pid)) signal(pid, 'SIGKILL');
    fs.rmSync(p.pidFile, { force: true });
    log(`${p.kind === 'etcd' ? 'etcd member' : p.kind === 'guard' ? 'guard of host' : 'agent of host'} ${p.name}: stopped`);
  }
}

export function pidOf(p: LabProcess): number | null {
  try {
    const pid = Number(fs.readFileSync(p.pidFile, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 && processAlive(pid) ? pid : null;
  } catch {
    return null;
  }
}

export function running(p: LabProcess): boolean {
  return pidOf(p) !== null;
}

function spawnDetached(p: LabProcess, argv: string[]): void {
  const out = fs.openSync(p.logFile, 'a', 0o600);
  const child = spawn(argv[0], argv.slice(1), { detached: true, stdio: ['ignore', out, out], cwd: PACKAGE_ROOT, env: process.env });
  fs.closeSync(out);
  child.unref();
  fs.writeFileSync(p.pidFile, `${child.pid}\n`, { mode: 0o644 });
}

async function until(ms: number, check: () => Promise<boolean>, what: () => string): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new PgmError('daemon.failed', `${what()}.`, { hint: 'read the logs in logs/.' });
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone
  }
}

function tail(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim().split('\n').slice(-2).join(' / ');
  } catch {
    return 'no log';
  }
}
