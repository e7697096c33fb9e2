import fs from 'node:fs';
import path from 'node:path';
import { NODE_CONF, STANDBY_CONF, renderHba, renderNodeConf, renderSharedConf, renderStandbyConf } from '../config/render.js';
import type { NodeConfig } from '../config/types.js';
import { writeIfChanged } from '../util/fsx.js';
import type { ClusterContext } from './context.js';

export type NodeRole = { readonly kind: 'primary' } | { readonly kind: 'replica'; readonly upstream: NodeConfig };

/** The files pgmaestro owns in a data directory, by name; null: the file must not exist (and standby.signal is empty). */
export type RenderedFiles = Readonly<Record<string, string | null>>;

/** Renders (pure) what `node` in `role` gets in its data directory. */
export function renderNodeFiles(ctx: ClusterContext, node: NodeConfig, role: NodeRole): RenderedFiles {
  const { cfg, bins } = ctx;
  const replica = role.kind === 'replica';
  return {
    'postgresql.conf': renderSharedConf(cfg, bins.major),
    [NODE_CONF]: renderNodeConf(cfg, node),
    'pg_hba.conf': renderHba(cfg),
    [STANDBY_CONF]: replica ? renderStandbyConf(cfg, node, role.upstream, ctx.paths.replicationPassfile) : null,
    'standby.signal': replica ? '' : null,
  };
}

/** The configuration files PostgreSQL reads settings from, of those pgmaestro renders. */
export const SETTINGS_FILES = ['postgresql.conf', NODE_CONF, STANDBY_CONF] as const;

/**
 * Writes the files pgmaestro owns into `dataDir` (which may be a partial
 * directory being built) for `node` in `role`. Only files whose content changes
 * are written; returns whether anything changed, so the caller reloads only then.
 */
export function writeNodeFiles(ctx: ClusterContext, node: NodeConfig, role: NodeRole, dataDir = node.dataDir): boolean {
  let changed = false;
  for (const [name, content] of Object.entries(renderNodeFiles(ctx, node, role))) {
    const file = path.join(dataDir, name);
    if (content !== null) {
      changed = writeIfChanged(file, content, 0o600, ctx.user) || changed;
    } else if (fs.existsSync(file)) {
      fs.rmSync(file);
      changed = true;
    }
  }
  for (const stale of ['recovery.signal', 'backup_label.old']) fs.rmSync(path.join(dataDir, stale), { force: true });
  return changed;
}

/** The settings files as they are now in `dataDir` (null where absent). */
export function currentSettingsFiles(dataDir: string): RenderedFiles {
  const out: Record<string, string | null> = {};
  for (const name of SETTINGS_FILES) {
    try {
      out[name] = fs.readFileSync(path.join(dataDir, name), 'utf8');
    } catch {
      out[name] = null;
    }
  }
  return out;
}

/** `name = value` lines of pgmaestro's rendered settings files, later ones winning (as PostgreSQL reads them). */
export function parseSettings(files: RenderedFiles): Map<string, string> {
  const out = new Map<string, string>();
  for (const name of SETTINGS_FILES) {
    for (const line of (files[name] ?? '').split('\n')) {
      const m = /^([a-z_][a-z0-9_.]*)\s*=\s*(.*)$/.exec(line.trim());
      if (m && m[1] !== 'include_if_exists' && m[1] !== 'include') out.set(m[1], m[2]);
    }
  }
  return out;
}

/** Names of the settings whose value differs between two renderings (added, changed or removed). */
export function changedSettings(before: RenderedFiles, after: RenderedFiles): string[] {
  const a = parseSettings(before);
  const b = parseSettings(after);
  return [...new Set([...a.keys(), ...b.keys()])].filter((k) => a.get(k) !== b.get(k)).sort();
}
