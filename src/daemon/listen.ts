import net from 'node:net';
import { getSystemErrorName } from 'node:util';
import { PgmError } from '../errors.js';
import type { ListenAddress } from '../config/types.js';

/**
 * Listening sockets that outlive the process serving them. The keeper of an
 * endpoint process (the supervisor in lab mode, systemd's socket unit on a
 * host) binds the endpoint's address once and hands the socket to each
 * endpoint process it starts as file descriptor 3. The kernel keeps such a
 * socket listening while any process holds it: when an endpoint process
 * dies, new clients are queued in its backlog (never refused) until the next
 * process accepts them.
 *
 * The keeper binds without listening or accepting itself: the endpoint
 * process calls listen(2) on the descriptor and is the only one to accept.
 * Node has no public API for a bound-but-idle socket; `net._createServerHandle`
 * (what Node's cluster module uses for the same purpose) is the one used here,
 * and where it is missing the endpoint binds its own port (then a restart
 * refuses connections for the moment it takes).
 */

/** A bound TCP socket (a libuv handle) to pass to a child in its stdio. */
export interface HeldSocket {
  readonly address: ListenAddress;
  /** The libuv TCP handle, given to `spawn` as a stdio entry. */
  readonly handle: object;
  close(): void;
}

/** The descriptor a child finds the socket at, as systemd does it (SD_LISTEN_FDS_START). */
export const LISTEN_FD = 3;
/** The environment variable the keeper sets for its child: the descriptor and the address it was bound to. */
export const LISTEN_ENV = 'PGMAESTRO_LISTEN_FD';

type CreateServerHandle = (address: string, port: number, addressType: number, fd: number | undefined, flags: number) => object | number;

/** Binds `address` for a child to listen on; null when this Node.js cannot hold a socket without accepting on it. Throws port.in_use. */
export function holdListener(address: ListenAddress): HeldSocket | null {
  const create = (net as unknown as { _createServerHandle?: CreateServerHandle })._createServerHandle;
  if (typeof create !== 'function' || !net.isIP(address.host)) return null; // a host name: the endpoint resolves and binds it itself
  const family = net.isIPv6(address.host) ? 6 : 4;
  const r = create(address.host, address.port, family, undefined, 0);
  if (typeof r === 'number') {
    const code = getSystemErrorName(r);
    if (code === 'EADDRINUSE') {
      throw new PgmError('port.in_use', `port ${address.port} on ${address.host} is already in use.`, { hint: 'stop the program that uses it, or choose another endpoint port in the configuration.' });
    }
    throw new PgmError('daemon.failed', `cannot bind ${address.host}:${address.port} (${code}).`, { hint: 'check that the endpoint host is an address of this machine.' });
  }
  const handle = r as { close(cb?: () => void): void };
  let closed = false;
  return {
    address,
    handle,
    close() {
      if (closed) return;
      closed = true;
      handle.close();
    },
  };
}

/**
 * The listening descriptor this process was given: by its keeper
 * (`PGMAESTRO_LISTEN_FD=3 host:port`) or by systemd socket activation
 * (`LISTEN_FDS=1`, `LISTEN_PID` naming this process); null when none (the
 * process then binds its own port).
 */
export function inheritedListenFd(env: NodeJS.ProcessEnv = process.env, pid = process.pid): number | null {
  const own = env[LISTEN_ENV];
  if (own) {
    const fd = Number(own.split(' ')[0]);
    return Number.isInteger(fd) && fd >= 3 ? fd : null;
  }
  if (env.LISTEN_FDS && (env.LISTEN_PID === undefined || Number(env.LISTEN_PID) === pid)) {
    const n = Number(env.LISTEN_FDS);
    return Number.isInteger(n) && n >= 1 ? LISTEN_FD : null;
  }
  return null;
}

/** The variables that name an inherited socket: not for grandchildren (a child must not think it was given one). */
export function withoutListenEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  for (const k of [LISTEN_ENV, 'LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES']) delete out[k];
  return out;
}

/**
 * Listens on `server` at `address`, on the inherited descriptor when there is
 * one (checking it is bound to that address), else by binding. Throws
 * port.in_use and the like as one sentence.
 */
export function listenOn(server: net.Server, address: ListenAddress, what: string, fd: number | null = inheritedListenFd()): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      if (err.code === 'EADDRINUSE') {
        reject(new PgmError('port.in_use', `the ${what} cannot listen on ${formatListen(address)}: the port is in use.`, { hint: 'stop what uses it or choose another endpoint port.', cause: err }));
      } else {
        reject(new PgmError('daemon.failed', `the ${what} cannot listen on ${formatListen(address)}: ${err.message}.`, { hint: 'check that the endpoint host is an address of this machine.', cause: err }));
      }
    };
    const onListening = () => {
      server.off('error', onError);
      const a = server.address();
      if (fd !== null && a && typeof a === 'object' && address.port !== 0 && (a.port !== address.port || !sameHost(a.address, address.host))) {
        server.close();
        reject(
          new PgmError('daemon.failed', `the socket this ${what} was given listens on ${a.address}:${a.port}, not on ${formatListen(address)} as the configuration says.`, {
            hint: 'restart it through its keeper (pgmaestro up, or pgmaestro service install again and systemctl restart).',
          }),
        );
        return;
      }
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    if (fd !== null) server.listen({ fd, backlog: 1024 });
    else server.listen({ host: address.host, port: address.port, backlog: 1024 });
  });
}

/** Whether a bound address is the configured host (a name, or a wildcard, matches any). */
function sameHost(bound: string, configured: string): boolean {
  const n = (x: string) => (x.startsWith('::ffff:') ? x.slice(7) : x);
  if (!net.isIP(configured) || configured === '0.0.0.0' || configured === '::') return true;
  return n(bound) === n(configured);
}

function formatListen(a: ListenAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
