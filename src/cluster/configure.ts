import fs from 'node:fs';
import path from 'node:path';
import { NODE_CONF, STANDBY_CONF, renderHba, renderNodeConf, renderSharedConf, renderStandbyConf } from '../config/render.js';
import type { NodeConfig } from '../config/types.js';
import { writeIfChanged } from '../util/fsx.js';
import type { ClusterContext } from './context.js';

export type NodeRole = { readonly kind: 'primary' } | { readonly kind: 'replica'; readonly upstream: NodeConfig };

/**
 * Writes the files pgmaestro owns into `dataDir` (which may be a partial
 * directory being built) for `node` in `role`. Only files whose content changes
 * are written; returns whether anything changed, so the caller reloads only then.
 */
export function writeNodeFiles(ctx: ClusterContext, node: NodeConfig, role: NodeRole, dataDir = node.dataDir): boolean {
  const { cfg, bins, user } = ctx;
  const owner = user;
  let changed = false;
  changed = writeIfChanged(path.join(dataDir, 'postgresql.conf'), renderSharedConf(cfg, bins.major), 0o600, owner) || changed;
  changed = writeIfChanged(path.join(dataDir, NODE_CONF), renderNodeConf(cfg, node), 0o600, owner) || changed;
  changed = writeIfChanged(path.join(dataDir, 'pg_hba.conf'), renderHba(cfg), 0o600, owner) || changed;

  const standbyConf = path.join(dataDir, STANDBY_CONF);
  const signal = path.join(dataDir, 'standby.signal');
  if (role.kind === 'replica') {
    changed = writeIfChanged(standbyConf, renderStandbyConf(cfg, node, role.upstream, ctx.paths.replicationPassfile), 0o600, owner) || changed;
    changed = writeIfChanged(signal, '', 0o600, owner) || changed;
  } else {
    for (const f of [standbyConf, signal]) {
      if (fs.existsSync(f)) {
        fs.rmSync(f);
        changed = true;
      }
    }
  }
  for (const stale of ['recovery.signal', 'backup_label.old']) fs.rmSync(path.join(dataDir, stale), { force: true });
  return changed;
}
