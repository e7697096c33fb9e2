import net from 'node:net';
import type { NodeConfig } from '../config/types.js';
import { PgmError } from '../errors.js';

/** True when nothing listens on host:port (we could bind it). */
export function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** Refuses to start `node` when another program holds one of its addresses' port. */
export async function assertPortFree(node: NodeConfig, configFile: string): Promise<void> {
  for (const host of new Set([node.service, node.replication, node.admin])) {
    if (!(await portFree(host, node.port))) {
      throw new PgmError('port.in_use', `port ${node.port} on ${host}, configured for node ${node.name}, is already in use by another program.`, {
        hint: `stop that program, or give ${node.name} another port in ${configFile} (nodes[].port).`,
        data: { node: node.name, port: node.port },
      });
    }
  }
}
