import { parentPort, workerData } from 'node:worker_threads';
import { pickTarget, type ForwarderRequest, type ForwarderSetup, type ForwarderStats, type PickState } from './forwarders.js';
import { Endpoint, type EndpointTarget } from './tcp.js';

/**
 * One forwarding thread of a TCP endpoint (see forwarders.ts): an Endpoint
 * listening on the descriptor every thread of the process shares (the kernel
 * gives each new connection to one of them), told by the main thread where
 * to forward and answering with what it did.
 */
const setup = workerData as ForwarderSetup;
const port = parentPort!;
let pick: PickState | null = null;
let turn = setup.index;
const routes = { replica: 0, primary: 0, refused: 0 };

const endpoint = new Endpoint({
  host: setup.host,
  port: setup.port,
  fd: setup.fd,
  holdMs: setup.holdMs,
  log: (line) => port.postMessage({ op: 'log', line }),
  pick: setup.mode === 'pick' ? choose : undefined,
});

/** ro: an eligible replica by least connections (this thread's), else the fallback. */
function choose(): EndpointTarget | null | 'refuse' {
  return pick ? pickTarget(pick, (n) => endpoint.connectionsTo(n), turn++, routes) : null;
}

function stats(): ForwarderStats {
  const s = endpoint.stats;
  return { ...s, target: s.target, routes: { ...routes } };
}

port.on('message', (m: ForwarderRequest) => {
  const done = (result: unknown) => port.postMessage({ op: 'done', id: m.id, result, stats: stats() });
  switch (m.op) {
    case 'setTarget':
      done(endpoint.retarget(m.target));
      break;
    case 'pick':
      pick = m.state;
      done(endpoint.release());
      break;
    case 'drop':
      done(endpoint.dropTarget(m.name));
      break;
    case 'close':
      clearInterval(ticker);
      void endpoint.close().then(() => done(null));
      break;
  }
});

const ticker = setInterval(() => port.postMessage({ op: 'stats', stats: stats() }), 250);
endpoint.listen().then(
  () => port.postMessage({ op: 'ready', stats: stats() }),
  (err: Error) => port.postMessage({ op: 'error', message: err.message }),
);
