import { openCluster } from '../cluster/context.js';
import { loadConfig, resolveConfigPath } from '../config/load.js';
import { ENDPOINT_KINDS, type EndpointKind } from '../config/types.js';
import { errorMessage, exitCodeFor, PgmError } from '../errors.js';

/**
 * `pgmaestro endpoint KIND -c FILE`, `pgmaestro supervise -c FILE` and
 * `pgmaestro spare -c FILE`: the hidden commands `up` and the supervisor
 * start detached. Parsed by hand (fixed shapes) to keep their start-up small.
 */
async function main(argv: string[]): Promise<void> {
  const [verb, ...rest] = argv;
  const c = rest.indexOf('-c');
  const file = resolveConfigPath(c >= 0 ? rest[c + 1] : undefined);
  if (verb === 'spare') {
    const { runSpare } = await import('../daemon/spare.js');
    // the configuration is read again when the spare takes its role: it may have changed while it waited
    await runSpare(() => openCluster(loadConfig(file)));
    return;
  }
  const ctx = await openCluster(loadConfig(file));
  if (verb === 'supervise') {
    const { runSupervisor } = await import('../daemon/supervise.js');
    await runSupervisor(ctx);
    return;
  }

  const kind = rest[0];
  if (!ENDPOINT_KINDS.includes(kind as EndpointKind)) throw new PgmError('usage', `there is no endpoint '${kind}'.`, { hint: `use one of: ${ENDPOINT_KINDS.join(', ')}.` });
  const { runEndpoint } = await import('../router/serve.js');
  const { makeAutoService } = await import('../router/auto.js');
  await runEndpoint(ctx, kind as EndpointKind, makeAutoService);
}

try {
  await main(process.argv.slice(2));
  process.exit(0);
} catch (err) {
  process.stderr.write(`pgmaestro: ${errorMessage(err)}\n`);
  process.exit(exitCodeFor(err));
}
