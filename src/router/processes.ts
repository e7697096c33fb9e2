import path from 'node:path';
import type { ClusterContext } from '../cluster/context.js';
import { portFree } from '../cluster/ports.js';
import { ENDPOINT_KINDS, type EndpointKind, type ListenAddress } from '../config/types.js';
import { callControl, socketPath } from '../daemon/api.js';
import { countRestart, daemonRole, livePid, restarts, since, startDetached, stopRole, supervisorRole, type ProcessRole } from '../daemon/spawn.js';
import { PgmError } from '../errors.js';
import type { EndpointProcessStats } from './stats.js';

/**
 * The process model of the endpoints, in one place: each enabled endpoint
 * (rw, ro, auto) is a process of its own (`pgmaestro endpoint KIND`), so
 * forwarding never shares an event loop with the monitor or the archiver,
 * and a crash of one endpoint drops only its own connections. They are
 * detached: they keep their listening sockets and connections while the
 * daemon is down or restarting, and follow the cluster state by themselves.
 * The supervisor starts them, holds their listening sockets and restarts one
 * that dies (daemon/supervise.ts); the daemon (later each multi-host agent,
 * for its host) calls `refresh` after it wrote the state, and `watch`
 * restarts one while no supervisor runs; `down` calls `stop`.
 */

export function endpointRole(ctx: ClusterContext, kind: EndpointKind): ProcessRole {
  return {
    argv: ['endpoint', kind],
    pidFile: path.join(ctx.paths.stateDir, `endpoint-${kind}.pid`),
    logFile: path.join(ctx.paths.logsDir, `endpoint-${kind}.log`),
  };
}

export function endpointSocket(ctx: ClusterContext, kind: EndpointKind): string {
  return socketPath(ctx, `endpoint-${kind}`);
}

/** The endpoints this configuration enables, with their addresses. */
export function enabledEndpoints(ctx: ClusterContext): { kind: EndpointKind; address: ListenAddress }[] {
  return ENDPOINT_KINDS.flatMap((kind) => {
    const address = ctx.cfg.endpoints[kind];
    return address ? [{ kind, address }] : [];
  });
}

export function formatAddress(a: ListenAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** Refuses (port.in_use) when an endpoint that is not running cannot get its port: checked by `up` before anything starts. */
export async function checkEndpointPorts(ctx: ClusterContext): Promise<void> {
  for (const { kind, address } of enabledEndpoints(ctx)) {
    if (livePid(ctx, endpointRole(ctx, kind)) !== null) continue;
    if (!(await portFree(address.host, address.port))) {
      throw new PgmError('port.in_use', `port ${address.port} on ${address.host}, where the ${kind} endpoint listens, is already in use by another program.`, {
        hint: `stop that program, or set endpoints.${kind} to another host:port (or false to disable it) in ${ctx.cfg.file}.`,
        data: { kind, port: address.port },
      });
    }
  }
  // the web console is the daemon's: checked while no daemon holds it
  const c = ctx.cfg.endpoints.console;
  if (c && livePid(ctx, daemonRole(ctx)) === null && !(await portFree(c.host, c.port))) {
    throw new PgmError('port.in_use', `port ${c.port} on ${c.host}, where the daemon's web console listens, is already in use by another program.`, {
      hint: `stop that program, or set endpoints.console to another host:port (or off) in ${ctx.cfg.file}.`,
      data: { kind: 'console', port: c.port },
    });
  }
}

/**
 * `up`: waits up to `waitMs` for the supervisor to have every enabled
 * endpoint running. Returns one line per endpoint; throws daemon.failed,
 * naming the log to read, for one that did not start.
 */
export async function awaitEndpoints(ctx: ClusterContext, waitMs: number): Promise<string[]> {
  const deadline = Date.now() + waitMs;
  const missing = () => enabledEndpoints(ctx).filter(({ kind }) => livePid(ctx, endpointRole(ctx, kind)) === null);
  while (missing().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  const still = missing();
  if (still.length > 0) {
    const { kind, address } = still[0];
    throw new PgmError('daemon.failed', `the ${kind} endpoint on ${formatAddress(address)} did not start within ${waitMs / 1000} s.`, {
      hint: `read ${endpointRole(ctx, kind).logFile} for the cause; the supervisor goes on trying.`,
    });
  }
  return enabledEndpoints(ctx).map(({ kind, address }) => `endpoint ${kind} ${formatAddress(address)}: pid ${livePid(ctx, endpointRole(ctx, kind))}`);
}

/**
 * The daemon's fallback while no supervisor runs (it was killed, and the
 * next `up` has not restored it): restarts endpoint processes that died,
 * checking every `intervalMs`, until `stop()`. Each restart is counted
 * (status shows it) and reported. Such an endpoint binds its own port (the
 * supervisor's socket went with it), so its restart refuses connections for
 * the moment it takes.
 */
export function watchEndpoints(ctx: ClusterContext, report: (sentence: string) => void, intervalMs = 200): { stop(): void } {
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  const restarting = new Set<EndpointKind>();
  const known = new Map<EndpointKind, number>();
  const tick = async () => {
    const supervised = livePid(ctx, supervisorRole(ctx)) !== null;
    for (const { kind, address } of enabledEndpoints(ctx)) {
      const role = endpointRole(ctx, kind);
      const pid = livePid(ctx, role);
      if (pid !== null) {
        known.set(kind, pid);
        continue;
      }
      if (supervised || restarting.has(kind) || stopped) continue;
      restarting.add(kind);
      const was = known.get(kind);
      void startDetached(ctx, role, ['endpoint', kind])
        .then((newPid) => {
          known.set(kind, newPid);
          if (was) report(`endpoint ${kind} ${formatAddress(address)}: the process (pid ${was}) was gone and no supervisor runs; restarted it as pid ${newPid} (restart ${countRestart(role)})`);
          else report(`endpoint ${kind} ${formatAddress(address)}: started (pid ${newPid}; no supervisor runs)`);
        })
        .catch((err: unknown) => report(`endpoint ${kind} ${formatAddress(address)}: could not restart it: ${err instanceof PgmError ? err.render() : String(err)}`))
        .finally(() => restarting.delete(kind));
    }
  };
  const loop = () => {
    if (stopped) return;
    timer = setTimeout(() => void tick().finally(loop), intervalMs);
  };
  loop();
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}

/**
 * Makes every running endpoint read the cluster state now and apply it;
 * resolves once each has answered (or did not within `timeoutMs`: a process
 * that does not answer is stuck or dying, and reads the state at its start).
 * Returns each endpoint's sentence.
 */
export async function refreshEndpoints(ctx: ClusterContext, timeoutMs = 3000): Promise<string[]> {
  return Promise.all(
    enabledEndpoints(ctx).map(async ({ kind }) => {
      try {
        const r = await callControl(endpointSocket(ctx, kind), 'refresh', {}, timeoutMs);
        return r === null ? `endpoint ${kind}: not running` : String(r);
      } catch (err) {
        return `endpoint ${kind}: did not answer a refresh (${(err as Error).message})`;
      }
    }),
  );
}

/** `down`: stops every endpoint process (by its pid); returns one line per stopped one. */
export async function stopEndpoints(ctx: ClusterContext): Promise<string[]> {
  const out: string[] = [];
  // Disabled kinds too: an endpoint turned off in the config may still run from before.
  for (const kind of ENDPOINT_KINDS) {
    if (await stopRole(ctx, endpointRole(ctx, kind), 5000)) out.push(`endpoint ${kind}: stopped`);
  }
  return out;
}

/** Pid, start time and restarts of one endpoint process, from its files (no call to it). */
export function endpointProcess(ctx: ClusterContext, kind: EndpointKind): { pid: number | null; since: string | null; restarts: number } {
  const role = endpointRole(ctx, kind);
  const pid = livePid(ctx, role);
  return { pid, since: pid === null ? null : since(role), restarts: restarts(role) };
}

/** Asks one endpoint process for its figures; null when it does not run or answer. */
export async function askStats(ctx: ClusterContext, kind: EndpointKind, timeoutMs = 2000): Promise<EndpointProcessStats | null> {
  try {
    return (await callControl(endpointSocket(ctx, kind), 'stats', {}, timeoutMs)) as EndpointProcessStats | null;
  } catch {
    return null;
  }
}
