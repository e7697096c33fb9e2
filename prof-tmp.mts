import { openCluster } from './src/cluster/context.js';
import { loadConfig } from './src/config/load.js';
import { makeAutoService } from './src/router/auto.js';
const ctx = await openCluster(loadConfig('/tmp/pgm-trlab/c/pgmaestro.yaml'));
const svc = makeAutoService({ ctx, address: { host: '127.0.0.1', port: 11499 }, event: () => undefined, log: () => undefined });
await svc.start();
console.log('listening');
process.on('SIGTERM', async () => { await svc.close(); process.exit(0); });
