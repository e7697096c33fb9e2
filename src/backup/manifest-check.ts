import { PgmError } from '../errors.js';
import { sha256 } from './catalog.js';
import type { FileList } from './types.js';

/**
 * Cross-checks a backup's catalog against PostgreSQL's own backup_manifest:
 * the manifest's checksum (SHA-256 of everything before its last line, as
 * pg_verifybackup computes it), then every file it lists present in the
 * catalog with the same size and CRC-32C, and no file in the catalog that
 * it does not list. Pure. Throws backup.corrupt naming the first difference.
 */
export function checkManifest(id: string, manifest: Buffer, files: FileList): { files: number } {
  const where = `backups/${id}/backup_manifest`;
  const fail = (why: string, file = where) =>
    new PgmError('backup.corrupt', `backup ${id} is damaged: ${why}.`, { hint: `run pgmaestro backup verify ${id}; restore from another backup, or undo the damage.`, data: { backup: id, file } });

  // 1. the manifest's own checksum
  const text = manifest.toString('utf8');
  const body = text.endsWith('\n') ? text.slice(0, -1) : text;
  const cut = body.lastIndexOf('\n');
  let parsed: { Files?: unknown; 'Manifest-Checksum'?: unknown };
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch {
    throw fail(`${where} is not valid JSON`);
  }
  if (cut < 0 || typeof parsed['Manifest-Checksum'] !== 'string' || sha256(manifest.subarray(0, Buffer.byteLength(body.slice(0, cut + 1)))) !== parsed['Manifest-Checksum']) {
    throw fail(`${where} does not match its own Manifest-Checksum`);
  }

  // 2. every file it lists, in the catalog, the same
  const catalog = new Map<string, { size: number; crc32c: string | null }>();
  for (const e of files.entries) if (e.kind === 'file') catalog.set(dataRel(e.path), e);
  const listed = new Set<string>();
  for (const f of (Array.isArray(parsed.Files) ? parsed.Files : []) as Record<string, unknown>[]) {
    const p = typeof f.Path === 'string' ? f.Path : typeof f['Encoded-Path'] === 'string' ? Buffer.from(f['Encoded-Path'], 'hex').toString('utf8') : null;
    if (p === null) throw fail(`${where} has a file entry without a path`);
    listed.add(p);
    const c = catalog.get(p);
    if (!c) throw fail(`files.json lacks ${p}, which PostgreSQL's backup_manifest lists`, `backups/${id}/files.json`);
    if (c.size !== f.Size) throw fail(`files.json gives ${p} ${c.size} bytes, PostgreSQL's backup_manifest ${String(f.Size)}`, `backups/${id}/files.json`);
    if (f['Checksum-Algorithm'] === 'CRC32C' && c.crc32c !== null && c.crc32c !== String(f.Checksum).toLowerCase()) {
      throw fail(`files.json gives ${p} the CRC-32C ${c.crc32c}, PostgreSQL's backup_manifest ${String(f.Checksum)}`, `backups/${id}/files.json`);
    }
  }
  for (const p of catalog.keys()) if (!listed.has(p) && !p.startsWith('pg_wal/')) throw fail(`files.json lists ${p}, which PostgreSQL's backup_manifest does not`, `backups/${id}/files.json`);
  return { files: listed.size };
}

/** `data/x` -> `x`; `tblspc/<oid>/x` -> `pg_tblspc/<oid>/x`. */
export function dataRel(p: string): string {
  if (p === 'data') return '';
  if (p.startsWith('data/')) return p.slice(5);
  const m = /^tblspc\/(\d+)(?:\/(.*))?$/.exec(p);
  if (m) return m[2] ? `pg_tblspc/${m[1]}/${m[2]}` : `pg_tblspc/${m[1]}`;
  return p;
}
