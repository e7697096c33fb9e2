import type http from 'node:http';
import type { ClusterContext } from '../cluster/context.js';
import type { EndpointKind } from '../config/types.js';
import { serveControl } from '../daemon/api.js';
import { recordEvent } from '../daemon/events.js';
import { removePidFile, writePidFile } from '../daemon/spawn.js';
import { PgmError } from '../errors.js';
import { endpointRole, endpointSocket, formatAddress } from './processes.js';
import { RoService } from './ro.js';
import { RwService } from './rw.js';
import type { EndpointService, ServiceDeps } from './service.js';
import type { EndpointProcessStats } from './stats.js';

/**
 * The main of an endpoint process (`pgmaestro endpoint KIND`): listen, follow
 * the cluster, answer `stats` and `refresh` on its control socket, and stop on
 * SIGTERM. It depends only on the configuration, the state store and its own
 * probes of the nodes, never on the daemon.
 */
export async function runEndpoint(ctx: ClusterContext, kind: EndpointKind, makeAuto?: (deps: ServiceDeps) => EndpointService): Promise<void> {
  const log = (line: string) => process.stdout.write(`${new Date().toISOString()} ${line}\n`);
  const event = (sentence: string) => {
    recordEvent(ctx, sentence).catch(() => undefined); // the event log is best effort here; the process log has it
    log(sentence);
  };
  const address = ctx.cfg.endpoints[kind];
  if (!address) {
    throw new PgmError('usage', `the ${kind} endpoint is disabled in ${ctx.cfg.file}.`, { hint: `set endpoints.${kind} to host:port to enable it.` });
  }
  const deps: ServiceDeps = { ctx, address, event, log };
  let service: EndpointService;
  if (kind === 'rw') service = new RwService(deps);
  else if (kind === 'ro') service = new RoService(deps);
  else if (makeAuto) service = makeAuto(deps);
  else throw new PgmError('usage', `this build has no ${kind} endpoint.`, { hint: 'disable it in the configuration.' });

  const startedAt = new Date().toISOString();
  await service.start();
  const control: http.Server = await serveControl(endpointSocket(ctx, kind), {
    stats: async (): Promise<EndpointProcessStats> => ({ kind, pid: process.pid, since: startedAt, ...service.stats() }),
    refresh: () => service.refresh(),
  });
  const role = endpointRole(ctx, kind);
  writePidFile(role);
  log(`endpoint ${kind} listening on ${formatAddress(address)} (pid ${process.pid})`);

  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      log(`received ${sig}, closing the ${kind} endpoint`);
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  removePidFile(role);
  await Promise.all([service.close(), new Promise((r) => control.close(r))]);
}
