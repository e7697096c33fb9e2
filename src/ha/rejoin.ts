import { PgmError } from '../errors.js';
import { currentPrimaryName, findNode, type ClusterContext } from '../cluster/context.js';
import type { Secrets } from '../cluster/secrets.js';
import { nextState } from '../cluster/state.js';
import { waitHealthy } from '../cluster/health.js';
import { ensureSlots } from './promote.js';
import { recreateSlot, replicasWithLostSlots } from './slots.js';

/**
 * `pgmaestro rejoin NODE`: rebuild a node (typically an old primary) as a
 * replica of the current primary — pg_rewind where the installation has it
 * (data checksums are always on), else a fresh clone with pgmaestro's own
 * BASE_BACKUP client, the old data kept aside. Then it is unfenced.
 */
export async function rejoin(ctx: ClusterContext, secrets: Secrets, nodeName: string, log: (line: string) => void): Promise<string> {
  const node = findNode(ctx.cfg, nodeName);
  const primary = findNode(ctx.cfg, await currentPrimaryName(ctx));
  if (node.name === primary.name) {
    throw new PgmError('usage', `${node.name} is the current primary; only another node can rejoin it.`, { hint: 'name a replica or a fenced old primary.' });
  }
  const control = ctx.control(node);

  // 1. stop it, whatever it is doing; a lost slot is made anew (and rules out a rewind: WAL it needs is gone)
  await control.stop('fast', 60);
  const slotLost = (await replicasWithLostSlots(ctx, primary, secrets)).includes(node.name);
  if (slotLost) {
    await recreateSlot(ctx, primary, node, secrets);
    log(`${node.name}: its slot on ${primary.name} was lost; made a new one, and it is cloned afresh`);
  }
  await ensureSlots(ctx, primary, secrets);

  // 2. on its host: rewind, or clone afresh
  const { how, log: lines } = await control.rebuild(primary.name, { fresh: slotLost });
  for (const l of lines) log(l);

  // 3. it is a replica now: unfenced before it streams, so that from its first
  //    acknowledgement of a synchronous commit the election counts it; then
  //    start it and wait until it streams
  await control.configure({ kind: 'replica', upstream: primary.name });
  await ctx.store.update(ctx.group, (st) => (st && st.fenced.includes(node.name) ? nextState(st, { fenced: st.fenced.filter((n) => n !== node.name) }) : null));
  await control.start();
  await waitHealthy(ctx, primary, [node], secrets, 120_000);
  return `${node.name} rejoined as a replica of ${primary.name} through ${how}`;
}
