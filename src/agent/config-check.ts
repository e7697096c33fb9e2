import crypto from 'node:crypto';
import type { ClusterConfig } from '../config/types.js';
import { formatPath } from '../config/load.js';
import type { EtcdStateStore } from '../dcs/etcd.js';
import { PgmError } from '../errors.js';

/**
 * Agents work together only on one configuration: the first agent records
 * its configuration (and every node's override file) in etcd with a
 * checksum; every other agent compares its own and refuses to start on a
 * difference, naming the first differing key. While no other agent runs, a
 * starting agent replaces the record: that is how a changed configuration is
 * rolled out (stop the agents, deploy the file everywhere, start them).
 */
export async function checkConfig(store: EtcdStateStore, cfg: ClusterConfig, host: string): Promise<void> {
  const c = store.client;
  const mine = canonicalJson(cfg.canonical);
  const checksum = crypto.createHash('sha256').update(mine).digest('hex');
  const record = JSON.stringify({ checksum, host, at: new Date().toISOString(), config: JSON.parse(mine) });
  for (let attempt = 0; attempt < 5; attempt++) {
    const cur = await c.get(store.keys.config);
    if (!cur) {
      if (await c.txn([{ key: store.keys.config, target: 'Create', revision: '0' }], [{ put: store.keys.config, value: record }])) return;
      continue;
    }
    const theirs = JSON.parse(cur.value) as { checksum: string; host: string; config: unknown };
    if (theirs.checksum === checksum) return;
    const others = (await c.list(store.keys.agents)).filter((k) => !k.key.endsWith(`/${host}`));
    if (others.length === 0) {
      if (await c.txn([{ key: store.keys.config, target: 'Mod', revision: cur.modRevision }], [{ put: store.keys.config, value: record }])) return;
      continue;
    }
    const d = firstDifference(JSON.parse(mine), theirs.config, []) ?? { path: [], here: '?', there: '?' };
    // the record holds { config, overrides }: a key of the shared file reads as written there, an override with its node's file
    const where = d.path[0] === 'config' ? formatPath(d.path.slice(1)) : `the override file of node ${String(d.path[1])}${d.path.length > 2 ? `, ${formatPath(d.path.slice(2))}` : ''}`;
    throw new PgmError('dcs.config_mismatch', `the configuration of host ${host} (${cfg.file}) differs from the one the running agents use (recorded by host ${theirs.host}): first at ${where}, here ${d.here}, there ${d.there}.`, {
      hint: 'deploy the same pgmaestro.yaml and override files on every host; to change it, stop every agent, deploy, then start them.',
    });
  }
  throw new PgmError('dcs.conflict', 'the configuration record in etcd kept changing while this agent started.', { hint: 'start the agent again.' });
}

/** JSON with object keys sorted, so equal configurations have equal text. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v as object)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/** The first key path where `a` and `b` differ (depth first, keys in order), with both values shown. */
export function firstDifference(a: unknown, b: unknown, at: (string | number)[]): { path: (string | number)[]; here: string; there: string } | null {
  const show = (x: unknown) => (x === undefined ? '(absent)' : JSON.stringify(x));
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object' && Array.isArray(a) === Array.isArray(b)) {
    const keys = Array.isArray(a) ? [...Array(Math.max(a.length, (b as unknown[]).length)).keys()] : [...new Set([...Object.keys(a), ...Object.keys(b as object)])].sort();
    for (const k of keys) {
      const d = firstDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], [...at, k]);
      if (d) return d;
    }
    return null;
  }
  return canonicalJson(a) === canonicalJson(b) ? null : { path: at, here: show(a), there: show(b) };
}
