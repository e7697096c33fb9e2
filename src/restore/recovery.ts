import fs from 'node:fs';
import path from 'node:path';
import { MARKER_FILE } from '../cluster/paths.js';
import { NODE_CONF, STANDBY_CONF, settingsLines } from '../config/render.js';
import type { Settings } from '../config/schema.js';
import type { RunAs } from '../postgres/exec.js';
import { writeFileAtomic } from '../util/fsx.js';
import type { RestoreTarget } from './plan.js';

/** The recovery settings for `target`, reading WAL with `restoreCommand`. Pure. */
export function recoverySettings(target: RestoreTarget, restoreCommand: string): Settings {
  const s: Settings = { restore_command: restoreCommand, recovery_target_timeline: 'latest' };
  switch (target.kind) {
    case 'time':
      s.recovery_target_time = target.time.toISOString().replace('T', ' ').replace('Z', '+00');
      break;
    case 'lsn':
      s.recovery_target_lsn = target.lsn;
      break;
    case 'xid':
      s.recovery_target_xid = target.xid;
      break;
    case 'name':
      s.recovery_target_name = target.name;
      break;
    case 'latest':
      break;
  }
  if (target.kind !== 'latest') s.recovery_target_action = 'promote';
  return s;
}

const BEGIN = '# BEGIN pgmaestro recovery';
const END = '# END pgmaestro recovery';

/**
 * Makes a restored data directory an independent instance that recovers to
 * the target: its own port and address, no standby identity, no cluster
 * marker, recovery.signal, and the recovery settings in postgresql.auto.conf
 * (where PostgreSQL's own tools put them too).
 */
export function configureRecovery(dataDir: string, opts: { port: number; settings: Settings; owner: RunAs; standalone: boolean }): void {
  const own = opts.owner;
  if (opts.standalone) {
    for (const f of [STANDBY_CONF, 'standby.signal', MARKER_FILE]) fs.rmSync(path.join(dataDir, f), { force: true });
    writeFileAtomic(
      path.join(dataDir, NODE_CONF),
      '# Written by pgmaestro restore.\n' + settingsLines({ port: opts.port, listen_addresses: '127.0.0.1', cluster_name: `restore-${opts.port}` }),
      0o600,
      own,
    );
  }
  fs.rmSync(path.join(dataDir, 'log'), { recursive: true, force: true });
  fs.mkdirSync(path.join(dataDir, 'log'), { mode: 0o700 });
  if (own.uid !== undefined && own.gid !== undefined) fs.chownSync(path.join(dataDir, 'log'), own.uid, own.gid);
  for (const f of ['postmaster.pid', 'postmaster.opts', 'backup_manifest']) fs.rmSync(path.join(dataDir, f), { force: true });

  const autoConf = path.join(dataDir, 'postgresql.auto.conf');
  const existing = fs.existsSync(autoConf) ? fs.readFileSync(autoConf, 'utf8') : '';
  const kept = existing.replace(new RegExp(`${BEGIN}[\\s\\S]*?${END}\\n?`), '');
  writeFileAtomic(autoConf, `${kept}${BEGIN}\n${settingsLines(opts.settings)}${END}\n`, 0o600, own);
  if (opts.standalone) writeFileAtomic(path.join(dataDir, 'recovery.signal'), '', 0o600, own);
}
