import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClusterContext } from '../cluster/context.js';
import { ENDPOINT_KINDS, type ClusterConfig, type EndpointKind, type ListenAddress } from '../config/types.js';
import { PgmError } from '../errors.js';
import { writeFileAtomic } from '../util/fsx.js';
import { livePid, supervisorRole } from './spawn.js';

/**
 * `pgmaestro service install`: systemd units for a real host, where systemd
 * takes the supervisor's place. Per cluster C:
 *
 * - `pgmaestro-C.target` groups them (enable it to start at boot).
 * - `pgmaestro-C-nodes.service` (oneshot) provisions and starts the
 *   PostgreSQL servers (`up --service`) and stops them (`down --service`);
 *   the other units come after it.
 * - `pgmaestro-C-daemon.service` runs the daemon, restarted when it dies;
 *   KillMode=process, so a PostgreSQL server the daemon started (a restart in
 *   place, a rejoin) is not killed with it.
 * - per enabled endpoint, `pgmaestro-C-KIND.socket` (systemd holds the
 *   listening socket: clients queue while the endpoint restarts) and
 *   `pgmaestro-C-KIND.service` (the endpoint process, given the socket by
 *   socket activation, restarted at once when it dies).
 *
 * A file in the state directory records the installation: `up` and `down`
 * then start and stop the target through systemctl instead of a supervisor.
 */

export const SERVICE_ENV = 'PGMAESTRO_SERVICE';
const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface Unit {
  readonly name: string;
  readonly text: string;
}

export interface ServiceRecord {
  readonly manager: 'systemd';
  readonly dir: string;
  readonly target: string;
  readonly units: readonly string[];
  readonly installedAt: string;
}

/** The command line a unit runs pgmaestro with: this Node.js, the package's bin (the compiled CLI). */
export function serviceCommand(): string {
  return `${quote(process.execPath)} ${quote(path.join(PACKAGE_ROOT, 'bin', 'pgmaestro.js'))}`;
}

/** The units for a cluster. Pure: the same configuration gives the same files. */
export function renderUnits(cfg: Pick<ClusterConfig, 'cluster' | 'file' | 'endpoints'>, command: string): Unit[] {
  const c = cfg.cluster;
  const conf = quote(cfg.file);
  const target = `pgmaestro-${c}.target`;
  const nodes = `pgmaestro-${c}-nodes.service`;
  const daemon = `pgmaestro-${c}-daemon.service`;
  const endpoints = ENDPOINT_KINDS.flatMap((kind) => {
    const a = cfg.endpoints[kind];
    return a ? [{ kind, address: a }] : [];
  });
  const epUnits = (kind: EndpointKind) => ({ socket: `pgmaestro-${c}-${kind}.socket`, service: `pgmaestro-${c}-${kind}.service` });
  const header = (description: string) => ['# Written by pgmaestro service install; pgmaestro service uninstall removes it.', '[Unit]', `Description=${description}`];
  const units: Unit[] = [
    {
      name: target,
      text: lines([
        ...header(`pgmaestro cluster ${c}`),
        `Wants=${[nodes, daemon, ...endpoints.flatMap((e) => [epUnits(e.kind).socket, epUnits(e.kind).service])].join(' ')}`,
        '',
        '[Install]',
        'WantedBy=multi-user.target',
      ]),
    },
    {
      name: nodes,
      text: lines([
        ...header(`pgmaestro cluster ${c}: the PostgreSQL servers`),
        'After=network-online.target',
        'Wants=network-online.target',
        `PartOf=${target}`,
        '',
        '[Service]',
        'Type=oneshot',
        'RemainAfterExit=yes',
        `Environment=${SERVICE_ENV}=systemd`,
        `ExecStart=${command} up --service -c ${conf}`,
        `ExecStop=${command} down --service -c ${conf}`,
        // the postmasters are independent processes: they outlive this unit's start and are stopped by its ExecStop
        'KillMode=process',
        'TimeoutStartSec=infinity',
        'TimeoutStopSec=300',
      ]),
    },
    {
      name: daemon,
      text: lines([
        ...header(`pgmaestro cluster ${c}: the daemon (monitor, failover, WAL archive, backups)`),
        `After=${nodes}`,
        `Requires=${nodes}`,
        `PartOf=${target}`,
        'StartLimitIntervalSec=60',
        'StartLimitBurst=20',
        '',
        '[Service]',
        'Type=simple',
        `Environment=${SERVICE_ENV}=systemd`,
        `ExecStart=${command} daemon -c ${conf}`,
        'Restart=always',
        'RestartSec=1',
        'KillMode=process',
        'TimeoutStopSec=30',
      ]),
    },
  ];
  for (const { kind, address } of endpoints) {
    const u = epUnits(kind);
    units.push({
      name: u.socket,
      text: lines([
        ...header(`pgmaestro cluster ${c}: the ${kind} endpoint's listening socket`),
        `PartOf=${target}`,
        '',
        '[Socket]',
        `ListenStream=${listenStream(address)}`,
        'NoDelay=true',
        'Backlog=1024',
        `Service=${u.service}`,
      ]),
    });
    units.push({
      name: u.service,
      text: lines([
        ...header(`pgmaestro cluster ${c}: the ${kind} endpoint`),
        `Requires=${u.socket}`,
        `After=${u.socket} ${nodes}`,
        `PartOf=${target}`,
        'StartLimitIntervalSec=60',
        'StartLimitBurst=100',
        '',
        '[Service]',
        'Type=simple',
        `Environment=${SERVICE_ENV}=systemd`,
        `ExecStart=${command} endpoint ${kind} -c ${conf}`,
        'Restart=always',
        'RestartSec=100ms',
        'TimeoutStopSec=15',
      ]),
    });
  }
  return units;
}

/** Writes the units into `dir` (default /etc/systemd/system) and records the installation. Returns the sentences to print. */
export function installService(ctx: ClusterContext, dir = '/etc/systemd/system'): string[] {
  const supervisor = livePid(ctx, supervisorRole(ctx));
  if (supervisor !== null) {
    throw new PgmError('usage', `the cluster runs under pgmaestro's own supervisor (pid ${supervisor}); two keepers would fight over its processes.`, {
      hint: `stop it first with pgmaestro down -c ${ctx.cfg.file}, then install the service and start it with systemctl.`,
    });
  }
  if (!fs.existsSync(dir)) {
    throw new PgmError('usage', `the unit directory ${dir} does not exist.`, { hint: 'install on a host that runs systemd, or name another directory with --dir.' });
  }
  const units = renderUnits(ctx.cfg, serviceCommand());
  for (const u of units) writeFileAtomic(path.join(dir, u.name), u.text, 0o644);
  const target = units[0].name;
  const record: ServiceRecord = { manager: 'systemd', dir, target, units: units.map((u) => u.name), installedAt: new Date().toISOString() };
  writeFileAtomic(recordFile(ctx), JSON.stringify(record, null, 2) + '\n', 0o644);
  return [
    ...units.map((u) => `wrote ${path.join(dir, u.name)}`),
    `from now on pgmaestro up and down start and stop ${target} through systemctl.`,
    `to start it now and at boot: systemctl daemon-reload && systemctl enable --now ${target}`,
  ];
}

/** Removes the units recorded by installService; returns the sentences to print. */
export function uninstallService(ctx: ClusterContext): string[] {
  const r = readService(ctx);
  if (!r) return ['no systemd units are installed for this cluster.'];
  const out: string[] = [];
  for (const name of r.units) {
    fs.rmSync(path.join(r.dir, name), { force: true });
    out.push(`removed ${path.join(r.dir, name)}`);
  }
  fs.rmSync(recordFile(ctx), { force: true });
  out.push(`run systemctl daemon-reload; pgmaestro up starts the cluster under its own supervisor again.`);
  return out;
}

export function readService(ctx: ClusterContext): ServiceRecord | null {
  try {
    return JSON.parse(fs.readFileSync(recordFile(ctx), 'utf8')) as ServiceRecord;
  } catch {
    return null;
  }
}

/** `up` and `down` with an installed service: `systemctl start|stop` of its target; throws when systemd does not run here. */
export function systemctl(r: ServiceRecord, verb: 'start' | 'stop'): string {
  assertSystemd(r);
  const res = spawnSync('systemctl', [verb, r.target], { encoding: 'utf8' });
  if (res.status !== 0) {
    throw new PgmError('daemon.failed', `systemctl ${verb} ${r.target} failed: ${(res.stderr || res.error?.message || '').trim()}.`, { hint: `read journalctl -u 'pgmaestro-*' for the cause.` });
  }
  return `${r.target}: ${verb === 'start' ? 'started' : 'stopped'} (systemd)`;
}

/** Throws, before anything is done, when the cluster is a systemd service but systemd does not run here. */
export function assertSystemd(r: ServiceRecord): void {
  if (fs.existsSync('/run/systemd/system')) return;
  throw new PgmError('daemon.failed', `this cluster is installed as the systemd service ${r.target}, but systemd does not run on this host.`, {
    hint: "run pgmaestro service uninstall to go back to pgmaestro's own supervisor.",
  });
}

function recordFile(ctx: ClusterContext): string {
  return path.join(ctx.paths.stateDir, 'service.json');
}

function listenStream(a: ListenAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** systemd's quoting for a word of a command line (double quotes when needed). */
function quote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `"${word.replace(/(["\\])/g, '\\$1')}"`;
}

function lines(ls: string[]): string {
  return ls.join('\n') + '\n';
}
