import fs from 'node:fs';
import path from 'node:path';
import type { Repository } from '../backup/repository.js';
import type { WalEntry } from '../backup/types.js';
import { archivedReader, readHistories } from '../backup/wal-archive.js';
import { openSegmentBytes, openSegments, type OpenSegment } from '../backup/wal-open.js';
import { historyTimeline, isPowerOfTwo, parseSegmentName, segmentName, segnoOf, timelineOfSegment, timelineSpans } from '../backup/wal-names.js';
import { parseLsn } from '../postgres/lsn.js';
import type { RunAs } from '../postgres/exec.js';
import type { RestoreTarget } from './plan.js';

/**
 * The WAL a restored instance replays, handed to it in a spool directory
 * beside its data directory (`<target>_wal`, owned by the PostgreSQL OS
 * user, 0700): pgmaestro reads the archive (a directory or S3, with the
 * credentials only it holds), checks every file against its checksum,
 * decompresses it and writes it there; PostgreSQL's restore_command is a
 * plain `cp` from that directory. So the OS user never reads the
 * repository, and no credential reaches a command line, a configuration
 * file or a log.
 *
 * What is spooled: every history file, and the segments on the newest
 * timeline's history from the base backup's start up to the target (an
 * LSN's segment and the next; for a time, until a segment archived five
 * minutes past it; else the end of the archive), then — when the archive reaches it without a
 * gap — the segment in progress, zero-padded.
 */
export async function spoolWal(repo: Repository, from: { lsn: string; timeline: number }, target: RestoreTarget, dir: string, owner: RunAs): Promise<{ files: number; bytes: number; last: string | null }> {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  chown(dir, owner);
  const entries = await repo.walEntries();
  const histories = await readHistories(repo, entries.values());
  let files = 0;
  let bytes = 0;
  const write = async (name: string, data: AsyncIterable<Buffer>) => {
    const tmp = path.join(dir, `.${name}.tmp`);
    const fd = fs.openSync(tmp, 'w', 0o600);
    try {
      for await (const c of data) {
        fs.writeSync(fd, c);
        bytes += c.length;
      }
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    chown(tmp, owner);
    fs.renameSync(tmp, path.join(dir, name));
    files++;
  };

  // 1. every history file (recovery probes them one by one)
  for (const [tli, text] of histories) await write(`${tli.toString(16).toUpperCase().padStart(8, '0')}.history`, once(Buffer.from(text)));

  // 2. the segments on the path, as far as the target needs
  const segs = [...entries.values()].filter((e) => historyTimeline(e.name) === null && isPowerOfTwo(e.size) && parseSegmentName(e.name, e.size));
  const opens = await openSegments(repo);
  const segmentSize = segs[0]?.size ?? opens[0]?.segment_size;
  if (!segmentSize) return { files, bytes, last: null };
  let newest = from.timeline;
  for (const e of segs) newest = Math.max(newest, parseSegmentName(e.name, segmentSize)!.timeline);
  for (const t of histories.keys()) newest = Math.max(newest, t);
  const spans = timelineSpans(newest, histories.get(newest) ?? null);
  const byName = new Map(segs.map((e) => [e.name, e]));
  const stopLsn = target.kind === 'lsn' ? parseLsn(target.lsn) : null;
  // A time target is reached only at a commit after it, and a segment archived after the target may still
  // hold only earlier records: so fetch until a segment archived well (5 min) past the target.
  const stopTime = target.kind === 'time' ? new Date(target.time.getTime() + 300_000).toISOString() : null;
  let last: string | null = null;
  for (let n = segnoOf(parseLsn(from.lsn), segmentSize); ; n++) {
    const name = segmentName(timelineOfSegment(spans, n, segmentSize), n, segmentSize);
    const e: WalEntry | undefined = byName.get(name);
    if (!e) {
      const open: OpenSegment | undefined = opens.find((o) => o.segment === name);
      if (open) {
        try {
          await write(name, openSegmentBytes(repo, open));
        } catch (err) {
          // the archiver may have completed the segment (and dropped its chunks) while they were read
          const done = (await repo.walEntries()).get(name);
          if (!done) throw err;
          await write(name, archivedReader(repo, done));
        }
        last = name;
      }
      break;
    }
    await write(name, archivedReader(repo, e));
    last = name;
    if (stopLsn !== null && n * BigInt(segmentSize) > stopLsn) break; // the target's segment and the next (a record may cross into it)
    if (stopTime !== null && e.archived_at > stopTime) break;
  }
  return { files, bytes, last };
}

/** The restore_command that reads the spool directory: no pgmaestro process, no credentials. */
export function spoolRestoreCommand(dir: string): string {
  const q = dir.replace(/'/g, "'\\''");
  return `f='${q}'/%f; if [ -f "$f" ]; then cp "$f" "%p"; else exit 1; fi`;
}

export function spoolDirFor(targetDir: string): string {
  return `${path.resolve(targetDir)}_wal`;
}

function chown(p: string, owner: RunAs): void {
  if (owner.uid !== undefined && owner.gid !== undefined) fs.chownSync(p, owner.uid, owner.gid);
}

async function* once(b: Buffer): AsyncGenerator<Buffer> {
  yield b;
}
