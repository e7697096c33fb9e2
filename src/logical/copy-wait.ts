import path from 'node:path';
import type { ClusterContext } from '../cluster/context.js';
import { PgmError } from '../errors.js';
import { readTail } from '../postgres/control.js';
import fs from 'node:fs';
import type { QueryNodeConfig } from '../config/types.js';
import type { SubscriptionWork } from './plan.js';
import { onSubscriber } from './subscriber.js';
import { subscribedTables, tableState } from './subscriptions.js';

/**
 * Waits until every table of each subscription is ready (copied and caught
 * up), saying how far the copy is every so often. Returns the names of the
 * subscriptions whose copy finished; on timeout throws, naming the tables
 * still copying and the subscriber's last error — the copy itself goes on.
 */
export async function awaitInitialCopy(ctx: ClusterContext, works: readonly SubscriptionWork[], timeoutMs: number, log: (line: string) => void): Promise<Set<string>> {
  const done = new Set<string>();
  const started = Date.now();
  let lastSaid = started;
  const pending = works.filter((w) => w.decl.enabled);
  for (const w of works) if (!w.decl.enabled) log(`subscription ${w.decl.name} is disabled (enabled: false): its initial copy starts when it is enabled`);
  let states = new Map<string, Map<string, string>>();
  while (pending.some((w) => !done.has(w.decl.name))) {
    for (const w of pending.filter((x) => !done.has(x.decl.name))) {
      const tables = await onSubscriber(w.subscriber, w.decl.database, (c) => subscribedTables(c, w.decl.name)).catch(() => new Map<string, string>());
      states.set(w.decl.name, tables);
      if (tables.size > 0 && [...tables.values()].every((s) => s === 'r')) {
        done.add(w.decl.name);
        log(`subscription ${w.decl.name}: initial copy done, ${tables.size} table${tables.size === 1 ? '' : 's'} ready on ${w.subscriber.label} after ${((Date.now() - started) / 1000).toFixed(1)} s`);
      }
    }
    if (pending.every((w) => done.has(w.decl.name))) break;
    if (Date.now() - started > timeoutMs) {
      const w = pending.find((x) => !done.has(x.decl.name))!;
      const left = [...(states.get(w.decl.name) ?? new Map<string, string>()).entries()].filter(([, s]) => s !== 'r').map(([t, s]) => `${t} ${tableState(s)}`);
      const why = w.subscriber.node ? lastError(w.subscriber.node) : '';
      throw new PgmError('logical.failed', `the initial copy of subscription ${w.decl.name} on ${w.subscriber.label} has not finished after ${Math.round(timeoutMs / 1000)} s (${left.join(', ') || 'no table listed yet'})${why ? `; its log says: ${why}` : ''}.`, {
        hint: 'the copy goes on by itself: follow it with pgmaestro logical status, then run pgmaestro logical apply again to build the query node’s indexes (or raise --timeout).',
      });
    }
    if (Date.now() - lastSaid > 15_000) {
      lastSaid = Date.now();
      for (const w of pending.filter((x) => !done.has(x.decl.name))) {
        const t = states.get(w.decl.name) ?? new Map<string, string>();
        log(`subscription ${w.decl.name}: initial copy, ${[...t.values()].filter((s) => s === 'r').length} of ${t.size} tables ready on ${w.subscriber.label}`);
      }
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  return done;
}

/** The last ERROR line in a query node's newest server log ('' when none). */
export function lastError(node: QueryNodeConfig): string {
  const dir = path.join(node.dataDir, 'log');
  try {
    const newest = fs
      .readdirSync(dir)
      .map((f) => path.join(dir, f))
      .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0];
    const lines = readTail(newest, 16384).split('\n').filter((l) => /\b(ERROR|FATAL):/.test(l));
    return (lines[lines.length - 1] ?? '').replace(/^.*?\b(ERROR|FATAL):\s*/, '').trim();
  } catch {
    return '';
  }
}
