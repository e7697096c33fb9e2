import fs from 'node:fs';
import path from 'node:path';
import { PgmError } from '../errors.js';
import { writeFileAtomic } from '../util/fsx.js';
import { DEFAULT_GROUP, groupOf, type ClusterState, type EventRecord, type StateStore } from './store.js';

/**
 * The lab's state store: files in the cluster's `state/` directory, one
 * daemon writing them. The default group lives in `state.json` (as before
 * groups existed), others in `groups/<group>.json`; events in `events.jsonl`.
 * The revision check compares the file's content with what this store last
 * read or wrote, which is enough for one writer plus the CLI's direct commands.
 */
export class FileStateStore implements StateStore {
  readonly kind = 'file' as const;
  private readonly seen = new Map<string, string | null>();

  constructor(private readonly stateDir: string) {}

  private file(group: string): string {
    return group === DEFAULT_GROUP ? path.join(this.stateDir, 'state.json') : path.join(this.stateDir, 'groups', `${group}.json`);
  }

  private raw(group: string): string | null {
    try {
      return fs.readFileSync(this.file(group), 'utf8');
    } catch {
      return null;
    }
  }

  async read(group = DEFAULT_GROUP): Promise<ClusterState | null> {
    const text = this.raw(group);
    this.seen.set(group, text);
    if (text === null) return null;
    try {
      return JSON.parse(text) as ClusterState;
    } catch (err) {
      throw new PgmError('cluster.state', `the cluster state file ${this.file(group)} is not valid JSON.`, {
        hint: 'restore it from a copy, or remove it to fall back to the configured primary.',
        cause: err,
      });
    }
  }

  async write(state: ClusterState): Promise<void> {
    const group = groupOf(state);
    const now = this.raw(group);
    if (this.seen.has(group) && this.seen.get(group) !== now) {
      this.seen.set(group, now);
      throw new PgmError('dcs.conflict', `the state of group ${group} changed while this command was working on it.`, { hint: 'run the command again.' });
    }
    const text = JSON.stringify(state, null, 2) + '\n';
    fs.mkdirSync(path.dirname(this.file(group)), { recursive: true });
    writeFileAtomic(this.file(group), text, 0o644);
    this.seen.set(group, text);
  }

  async update(group: string, change: (current: ClusterState | null) => ClusterState | null): Promise<ClusterState | null> {
    for (let attempt = 0; ; attempt++) {
      const cur = await this.read(group);
      const next = change(cur);
      if (next === null) return cur;
      try {
        await this.write({ ...next, group: next.group ?? (group === DEFAULT_GROUP ? undefined : group) });
        return next;
      } catch (err) {
        if (!(err instanceof PgmError && err.code === 'dcs.conflict') || attempt >= 5) throw err;
      }
    }
  }

  async primaryHolder(): Promise<string | null> {
    return null;
  }

  private get eventsFile(): string {
    return path.join(this.stateDir, 'events.jsonl');
  }

  async appendEvent(sentence: string, at = new Date()): Promise<EventRecord> {
    const rec = { at: at.toISOString(), sentence };
    fs.appendFileSync(this.eventsFile, JSON.stringify(rec) + '\n', { mode: 0o644 });
    return rec;
  }

  async events(last = 50): Promise<EventRecord[]> {
    let text = '';
    try {
      text = fs.readFileSync(this.eventsFile, 'utf8');
    } catch {
      return [];
    }
    return text
      .split('\n')
      .filter((l) => l.trim() !== '')
      .slice(-last)
      .map((l) => JSON.parse(l) as EventRecord);
  }

  async close(): Promise<void> {}
}
