import fs from 'node:fs';
import path from 'node:path';
import type { ClusterConfig, NodeConfig } from '../config/types.js';
import { PgmError } from '../errors.js';
import { readSystemIdentifier } from '../postgres/control.js';
import type { RunAs } from '../postgres/exec.js';
import { fsyncDir, writeFileAtomic } from '../util/fsx.js';
import { MARKER_FILE } from './paths.js';

export interface NodeMarker {
  readonly cluster: string;
  readonly node: string;
  readonly system_identifier: string;
}

export type DataDirState =
  | { readonly kind: 'empty' }
  | { readonly kind: 'ours'; readonly systemId: string };

/**
 * Says whether `node`'s data directory is empty (provision it) or holds this
 * node's data (use it). Anything else — another cluster's data, a PostgreSQL
 * directory pgmaestro did not create, unrelated files — is refused: pgmaestro
 * never writes into a directory it cannot prove is its own.
 */
export function inspectDataDir(cfg: ClusterConfig, node: NodeConfig): DataDirState {
  const dir = node.dataDir;
  let entries: string[];
  try {
    entries = fs.readdirSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { kind: 'empty' };
    throw new PgmError('data_dir.inaccessible', `cannot read the data directory ${dir} of node ${node.name} (${code}).`, {
      hint: 'fix its permissions, or point nodes[].data_dir elsewhere.',
    });
  }
  if (entries.length === 0) return { kind: 'empty' };

  const foreign = (why: string): never => {
    throw new PgmError('data_dir.foreign', `the data directory ${dir} of node ${node.name} ${why}; pgmaestro will not touch it.`, {
      hint: `point nodes[].data_dir of ${node.name} at an empty or missing directory, or move that data away if it is no longer needed.`,
      data: { node: node.name, dataDir: dir },
    });
  };
  const marker = readMarker(dir);
  if (!entries.includes('PG_VERSION')) foreign('is not empty and holds no PostgreSQL data');
  if (!marker) foreign('holds a PostgreSQL cluster that pgmaestro did not create');
  if (marker!.cluster !== cfg.cluster || marker!.node !== node.name) foreign(`belongs to node ${marker!.node} of cluster ${marker!.cluster}`);
  const systemId = readSystemIdentifier(dir);
  if (systemId === null || systemId !== marker!.system_identifier) foreign('holds data of another database system than its marker says');
  return { kind: 'ours', systemId: systemId! };
}

export function readMarker(dataDir: string): NodeMarker | null {
  try {
    return JSON.parse(fs.readFileSync(path.join(dataDir, MARKER_FILE), 'utf8')) as NodeMarker;
  } catch {
    return null;
  }
}

export function writeMarker(dataDir: string, cfg: ClusterConfig, node: NodeConfig, systemId: string, user: RunAs): void {
  const marker: NodeMarker = { cluster: cfg.cluster, node: node.name, system_identifier: systemId };
  writeFileAtomic(path.join(dataDir, MARKER_FILE), JSON.stringify(marker, null, 2) + '\n', 0o600, user);
}

/** Renames a completed partial directory onto the (missing or empty) data directory. */
export function moveIntoPlace(partial: string, dataDir: string): void {
  if (fs.existsSync(dataDir)) fs.rmdirSync(dataDir); // only ever empty here: inspectDataDir said so
  fs.renameSync(partial, dataDir);
  fsyncDir(path.dirname(dataDir));
}
