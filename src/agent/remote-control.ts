import type { HostConfig, NodeConfig } from '../config/types.js';
import type { DataDirState } from '../cluster/datadir.js';
import type { NodeControl, NodeInspection, RoleSpec } from '../cluster/node-control.js';
import type { ControlCheckpoint } from '../postgres/control.js';
import type { NodeChange } from '../cluster/reload.js';
import type { BackupInfo } from '../backup/types.js';
import type { RestoreTarget } from '../restore/plan.js';
import type { TlsIdentity } from './certs.js';
import { agentVerb } from './http.js';

const INSPECT_MS = 1000;
const SHORT_MS = 150_000;
const LONG_MS = 3600_000;

/**
 * Node control through the node's host agent (HTTPS, mutual TLS). Each verb
 * is the same verb of the agent's LocalNodeControl; a refusal there arrives
 * here as the same PgmError. `inspect` never throws: an agent that does not
 * answer within a second makes the host "not reachable" for this cycle.
 */
export class RemoteNodeControl implements NodeControl {
  readonly kind = 'remote' as const;

  constructor(
    readonly node: NodeConfig,
    private readonly host: HostConfig,
    private readonly identity: () => TlsIdentity,
  ) {}

  private verb<T>(verb: string, body: Record<string, unknown>, timeoutMs: number): Promise<T> {
    return agentVerb<T>(this.identity(), this.host, `node/${verb}`, { node: this.node.name, ...body }, timeoutMs);
  }

  async inspect(): Promise<NodeInspection> {
    try {
      return await this.verb<NodeInspection>('inspect', {}, INSPECT_MS);
    } catch (err) {
      return { reachable: false, pid: null, error: (err as Error).message };
    }
  }

  preflight(): Promise<DataDirState> {
    return this.verb('preflight', {}, SHORT_MS);
  }
  initPrimary(): Promise<void> {
    return this.verb('init-primary', {}, SHORT_MS);
  }
  checkConfig(role: RoleSpec): Promise<void> {
    return this.verb('check-config', { role }, SHORT_MS);
  }
  configure(role: RoleSpec): Promise<NodeChange> {
    return this.verb('configure', { role }, SHORT_MS);
  }
  start(): Promise<'started' | 'running'> {
    return this.verb('start', {}, SHORT_MS);
  }
  stop(mode: 'fast' | 'immediate' = 'fast', timeoutSec = 120): Promise<'stopped' | 'not running'> {
    return this.verb('stop', { mode, timeoutSec }, timeoutSec * 1000 + 10_000);
  }
  fence(reason: string): Promise<'fenced' | 'not running'> {
    return this.verb('fence', { reason }, 10_000);
  }
  promote(): Promise<number> {
    return this.verb('promote', {}, 90_000);
  }
  clone(upstream: string): Promise<{ bytes: number; ms: number }> {
    return this.verb('clone', { upstream }, LONG_MS);
  }
  rebuild(upstream: string, opts: { fresh?: boolean } = {}): Promise<{ how: 'pg_rewind' | 'a fresh clone'; log: string[] }> {
    return this.verb('rebuild', { upstream, fresh: opts.fresh === true }, LONG_MS);
  }
  async reclone(upstream: string, log: (line: string) => void): Promise<string> {
    const r = await this.verb<{ sentence: string; lines: string[] }>('reclone', { upstream }, LONG_MS);
    for (const l of r.lines) log(l);
    return r.sentence;
  }
  coldBackup(): Promise<BackupInfo> {
    return this.verb('cold-backup', {}, LONG_MS);
  }
  async restoreFromRepository(target: RestoreTarget, log: (line: string) => void): Promise<string> {
    const r = await this.verb<{ sentence: string; lines: string[] }>('restore', { target }, LONG_MS);
    for (const l of r.lines) log(l);
    return r.sentence;
  }
  async checkpoint(): Promise<ControlCheckpoint> {
    const c = await this.verb<{ state: number; checkpoint: string; redo: string; timeline: number }>('checkpoint', {}, SHORT_MS);
    return { state: c.state, checkpoint: BigInt(c.checkpoint), redo: BigInt(c.redo), timeline: c.timeline };
  }
  logTail(lines = 3): Promise<string> {
    return this.verb('log-tail', { lines }, 5000);
  }
}
