import fs from 'node:fs';
import type { NodeConfig } from '../config/types.js';
import { slotName } from '../config/render.js';
import { PgmError } from '../errors.js';
import { withClient, type SqlTarget } from '../postgres/sql.js';
import { cloneReplica } from '../cluster/clone.js';
import { adminTarget, currentPrimaryName, findNode, requireSecrets, type ClusterContext } from '../cluster/context.js';
import { waitHealthy } from '../cluster/health.js';
import type { Secrets } from '../cluster/secrets.js';
import { formatBytes } from '../util/format.js';
import { ARCHIVER_SLOT } from './promote.js';

/**
 * Replication slots never fill the primary's disk: the baseline bounds what a
 * slot may hold back (`max_slot_wal_keep_size`), this module watches what
 * each slot holds, says so when it passes half the bound or is about to be
 * (or has been) invalidated, and rebuilds a replica whose slot was lost —
 * the only way such a replica can stream again.
 */

/** One physical slot on the primary as PostgreSQL reports it. */
export interface SlotObservation {
  readonly name: string;
  /** 'replica' (with the node it serves), 'archiver', or 'other'. */
  readonly kind: 'replica' | 'archiver' | 'other';
  readonly node: string | null;
  readonly active: boolean;
  readonly retainedBytes: number | null;
  /** PostgreSQL's wal_status: reserved, extended, unreserved, lost (null when the slot never reserved WAL). */
  readonly walStatus: string | null;
  /** Bytes that can still be written before the slot is in danger of being lost (null: unbounded). */
  readonly safeWalSize: number | null;
}

export type SlotLevel = 'ok' | 'half' | 'unreserved' | 'lost';

/** How worried to be about one slot, given the bound in bytes (null: unlimited). */
export function slotLevel(s: SlotObservation, boundBytes: number | null): SlotLevel {
  if (s.walStatus === 'lost') return 'lost';
  if (s.walStatus === 'unreserved') return 'unreserved';
  if (boundBytes !== null && s.retainedBytes !== null && s.retainedBytes > boundBytes / 2) return 'half';
  return 'ok';
}

/**
 * The sentences for slots whose level got worse (or recovered) since the
 * last observation; pure. `previous` maps slot name to its last level.
 */
export function slotSentences(previous: ReadonlyMap<string, SlotLevel>, slots: readonly SlotObservation[], boundBytes: number | null, primary: string): { levels: Map<string, SlotLevel>; sentences: string[] } {
  const levels = new Map<string, SlotLevel>();
  const sentences: string[] = [];
  for (const s of slots) {
    const level = slotLevel(s, boundBytes);
    levels.set(s.name, level);
    const before = previous.get(s.name) ?? 'ok';
    if (level === before) continue;
    const who = s.kind === 'replica' ? `replica ${s.node}'s slot ${s.name}` : s.kind === 'archiver' ? `the WAL archiver's slot ${s.name}` : `slot ${s.name}`;
    const held = s.retainedBytes === null ? '' : ` holds ${formatBytes(s.retainedBytes)} of WAL on ${primary}`;
    const bound = boundBytes === null ? 'no bound (max_slot_wal_keep_size = -1)' : `the bound of ${formatBytes(boundBytes)}`;
    if (level === 'half') sentences.push(`warning: ${who}${held}, past half of ${bound}${s.active ? '' : '; nothing streams from it'}`);
    else if (level === 'unreserved') sentences.push(`warning: ${who}${held}, past ${bound}: its WAL is no longer reserved and goes at the next checkpoint${s.safeWalSize !== null ? ` (${formatBytes(Math.max(0, s.safeWalSize))} left)` : ''}`);
    else if (level === 'lost')
      sentences.push(
        s.kind === 'replica'
          ? `${who} was lost: ${primary} removed WAL it still needed (max_slot_wal_keep_size); ${s.node} cannot stream again until it is rebuilt`
          : s.kind === 'archiver'
            ? `${who} was lost: ${primary} removed WAL the archive did not have yet; the recovery window has a gap until the next full backup`
            : `${who} was lost`,
      );
    else sentences.push(`${who} is back within its bound${held ? ` (${held.trim()})` : ''}`);
  }
  return { levels, sentences };
}

/** `max_slot_wal_keep_size` in bytes as the primary runs it (null: -1, unlimited). */
export function parseBound(setting: string, unit: string | null): number | null {
  const n = Number(setting);
  if (!Number.isFinite(n) || n < 0) return null;
  const mult = unit === 'MB' ? 1048576 : unit === 'kB' ? 1024 : unit === 'GB' ? 1073741824 : 1048576;
  return n * mult;
}

/** Reads the primary's physical slots and its bound. */
export async function observeSlots(ctx: ClusterContext, target: SqlTarget): Promise<{ slots: SlotObservation[]; boundBytes: number | null }> {
  return withClient(
    target,
    async (c) => {
      const b = await c.query<{ setting: string; unit: string | null }>("SELECT setting, unit FROM pg_settings WHERE name = 'max_slot_wal_keep_size'");
      const r = await c.query<{ slot_name: string; active: boolean; retained: string | null; wal_status: string | null; safe: string | null }>(
        `SELECT slot_name, active, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint::text AS retained, wal_status, safe_wal_size::text AS safe
           FROM pg_replication_slots WHERE slot_type = 'physical' ORDER BY slot_name`,
      );
      const byslot = new Map(ctx.cfg.nodes.map((n) => [slotName(n), n.name]));
      return {
        boundBytes: b.rows[0] ? parseBound(b.rows[0].setting, b.rows[0].unit) : null,
        slots: r.rows.map((x) => ({
          name: x.slot_name,
          kind: x.slot_name === ARCHIVER_SLOT ? 'archiver' : byslot.has(x.slot_name) ? 'replica' : 'other',
          node: byslot.get(x.slot_name) ?? null,
          active: x.active,
          retainedBytes: x.retained === null ? null : Number(x.retained),
          walStatus: x.wal_status,
          safeWalSize: x.safe === null ? null : Number(x.safe),
        })),
      };
    },
    3000,
  );
}

/** The replicas (not fenced) whose slot on the primary is lost. */
export async function replicasWithLostSlots(ctx: ClusterContext, primary: NodeConfig, secrets: Secrets): Promise<string[]> {
  const { slots } = await observeSlots(ctx, adminTarget(ctx, primary, secrets));
  const fenced = new Set((await ctx.store.read())?.fenced ?? []);
  return slots.filter((s) => s.kind === 'replica' && s.walStatus === 'lost' && s.node !== primary.name && !fenced.has(s.node!)).map((s) => s.node!);
}

/**
 * Drops `node`'s slot on the primary (lost, or in the way) and creates it
 * anew, reserving WAL from now. A new physical slot starts at the redo point
 * of the last checkpoint, which may already be past the bound after heavy
 * writes (the next checkpoint would invalidate it at once): checkpoint first.
 */
export async function recreateSlot(ctx: ClusterContext, primary: NodeConfig, node: NodeConfig, secrets: Secrets): Promise<void> {
  await withClient(adminTarget(ctx, primary, secrets), async (c) => {
    await c.query('CHECKPOINT');
    await c.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active', [slotName(node)]);
    await c.query('SELECT pg_create_physical_replication_slot($1, true) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)', [slotName(node)]);
  });
}

/**
 * Rebuilds a replica whose slot was lost: stop it, give it a fresh slot,
 * clone it afresh from the primary (its old data kept aside until the clone
 * is complete and streaming, then removed: a replica holds nothing the
 * primary lacks), start it and wait until it streams — on the replica's own
 * host (its node control). The caller holds the cluster lock.
 */
export async function reclone(ctx: ClusterContext, nodeName: string, log: (line: string) => void): Promise<string> {
  const node = findNode(ctx.cfg, nodeName);
  const primary = findNode(ctx.cfg, await currentPrimaryName(ctx));
  if (node.name === primary.name) throw new PgmError('usage', `${node.name} is the primary; only a replica is rebuilt.`, { hint: 'name a replica.' });
  return ctx.control(node).reclone(primary.name, log);
}

/** reclone's work on the node's host (local node control). */
export async function recloneHere(ctx: ClusterContext, node: NodeConfig, primary: NodeConfig, secrets: Secrets, log: (line: string) => void): Promise<string> {
  const started = Date.now();
  await ctx.control(node).stop('fast', 60);
  const aside = `${node.dataDir}.lost-slot-${process.pid}`;
  fs.rmSync(aside, { recursive: true, force: true });
  fs.rmSync(`${aside}_tablespaces`, { recursive: true, force: true });
  if (fs.existsSync(node.dataDir)) fs.renameSync(node.dataDir, aside);
  if (fs.existsSync(`${node.dataDir}_tablespaces`)) fs.renameSync(`${node.dataDir}_tablespaces`, `${aside}_tablespaces`);
  try {
    const r = await cloneWithFreshSlot(ctx, node, primary, secrets, log);
    await ctx.control(node).start();
    await waitHealthy(ctx, primary, [node], secrets, 120_000);
    fs.rmSync(aside, { recursive: true, force: true });
    fs.rmSync(`${aside}_tablespaces`, { recursive: true, force: true });
    return `rebuilt ${node.name} after its slot was lost: cloned ${formatBytes(r.bytes)} from ${primary.name} in ${((Date.now() - started) / 1000).toFixed(1)} s; it streams again`;
  } catch (err) {
    // put the old data back when the clone did not get as far as replacing it
    if (!fs.existsSync(node.dataDir) && fs.existsSync(aside)) fs.renameSync(aside, node.dataDir);
    throw err;
  }
}

/**
 * Clones `node` with a slot made anew just before. The clone takes the WAL
 * it needs at its end, so a primary that writes more than its slot bound
 * meanwhile (a bulk load, or autovacuum setting hint bits after one) removes
 * it: then the slot is made anew and the clone tried once more.
 */
export async function cloneWithFreshSlot(ctx: ClusterContext, node: NodeConfig, primary: NodeConfig, secrets: Secrets, log: (line: string) => void): Promise<{ bytes: number; ms: number }> {
  await recreateSlot(ctx, primary, node, secrets);
  try {
    return await cloneReplica(ctx, node, primary, secrets, log);
  } catch (err) {
    if (!/has already been removed/.test((err as Error).message)) throw err;
    log(`${node.name}: ${primary.name} removed WAL the clone still needed (it wrote more than max_slot_wal_keep_size meanwhile); cloning once more`);
    await recreateSlot(ctx, primary, node, secrets);
    return cloneReplica(ctx, node, primary, secrets, log);
  }
}

/**
 * The daemon's watch over the primary's slots (every few seconds): one
 * sentence when a slot's level changes, and, with `ha.auto_reclone`, a
 * replica whose slot was lost rebuilt at once under the cluster lock.
 */
export class SlotWatch {
  private levels = new Map<string, SlotLevel>();
  private busy = false;

  constructor(
    private ctx: ClusterContext,
    private readonly event: (sentence: string) => void,
  ) {}

  useContext(ctx: ClusterContext): void {
    this.ctx = ctx;
  }

  async check(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const secrets = requireSecrets(this.ctx);
      const primary = findNode(this.ctx.cfg, await currentPrimaryName(this.ctx));
      const { slots, boundBytes } = await observeSlots(this.ctx, adminTarget(this.ctx, primary, secrets));
      const { levels, sentences } = slotSentences(this.levels, slots, boundBytes, primary.name);
      this.levels = levels;
      for (const s of sentences) this.event(s);
      if (!this.ctx.cfg.ha.autoReclone) return;
      const fenced = new Set((await this.ctx.store.read())?.fenced ?? []);
      for (const s of slots) {
        if (s.kind !== 'replica' || s.walStatus !== 'lost' || s.node === primary.name || fenced.has(s.node!)) continue;
        let lock;
        try {
          lock = await this.ctx.locks.acquire('cluster', `daemon: rebuild ${s.node}`, null);
        } catch {
          continue; // another command holds the cluster; next time
        }
        try {
          this.event(await reclone(this.ctx, s.node!, (l) => this.event(l)));
          this.levels.delete(s.name);
        } catch (err) {
          this.event(`rebuilding ${s.node} failed: ${err instanceof PgmError ? err.render() : (err as Error).message}`);
        } finally {
          await lock.release();
        }
      }
    } catch {
      // the primary cannot be asked now: the monitor says what that means
    } finally {
      this.busy = false;
    }
  }
}
