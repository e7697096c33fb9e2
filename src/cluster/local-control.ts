import fs from 'node:fs';
import path from 'node:path';
import type { NodeConfig } from '../config/types.js';
import { initdb, pgReload, pgStart, pgStop, postmasterPid, readControlCheckpoint, readSystemIdentifier, type ControlCheckpoint } from '../postgres/control.js';
import { run } from '../postgres/exec.js';
import { firstCause, keepOutput } from '../postgres/tool-failure.js';
import { assertReachable, ensureOwnedDir } from '../postgres/osuser.js';
import { withClient } from '../postgres/sql.js';
import { fencePostmaster } from '../postgres/fence.js';
import { writeFileAtomic } from '../util/fsx.js';
import { promoteNode } from '../ha/promote.js';
import { cloneReplica } from './clone.js';
import { cloneWithFreshSlot, recloneHere } from '../ha/slots.js';
import { writeNodeFiles, type NodeRole } from './configure.js';
import { applyNodeFiles, checkNodeFiles, type NodeChange } from './reload.js';
import { adminTarget, findNode, requireSecrets, type ClusterContext } from './context.js';
import { inspectDataDir, moveIntoPlace, readMarker, writeMarker, type DataDirState } from './datadir.js';
import { nodeUser } from './lab.js';
import { serverLogTail } from './lifecycle.js';
import type { NodeControl, NodeInspection, RoleSpec } from './node-control.js';
import { Repository } from '../backup/repository.js';
import type { BackupInfo } from '../backup/types.js';
import type { RestoreTarget } from '../restore/plan.js';
import { partialDir } from './paths.js';
import { assertPortFree } from './ports.js';
import { ensureSecrets } from './secrets.js';

/** Node control on this machine: pg_ctl, initdb, clone and rewind here. */
export class LocalNodeControl implements NodeControl {
  readonly kind = 'local' as const;

  constructor(
    private readonly ctx: ClusterContext,
    readonly node: NodeConfig,
  ) {}

  private role(spec: RoleSpec): NodeRole {
    return spec.kind === 'primary' ? spec : { kind: 'replica', upstream: findNode(this.ctx.cfg, spec.upstream) };
  }

  async inspect(): Promise<NodeInspection> {
    return { reachable: true, pid: postmasterPid(this.node.dataDir) };
  }

  async preflight(): Promise<DataDirState> {
    const { node, ctx } = this;
    assertReachable(node.dataDir, ctx.user, `the data directory of ${node.name}`);
    const state = inspectDataDir(ctx.cfg, node);
    if (postmasterPid(node.dataDir) === null && !ctx.lab) await assertPortFree(node, ctx.cfg.file); // a lab namespace is private to its node
    return state;
  }

  async initPrimary(): Promise<void> {
    const { node, ctx } = this;
    const secrets = ensureSecrets(ctx.cfg, ctx.user);
    const partial = partialDir(node.dataDir);
    fs.rmSync(partial, { recursive: true, force: true }); // left by an interrupted earlier run
    fs.mkdirSync(path.dirname(node.dataDir), { recursive: true });
    ensureOwnedDir(partial, ctx.user, 0o700);
    const pwfile = path.join(ctx.paths.secretsDir, `.initdb-${process.pid}.pw`);
    writeFileAtomic(pwfile, secrets.superuserPassword + '\n', 0o600, ctx.user);
    try {
      await initdb(ctx.bins, ctx.user, partial, { superuser: ctx.cfg.superuser, pwfile, logsDir: ctx.paths.logsDir });
    } finally {
      fs.rmSync(pwfile, { force: true });
    }
    writeNodeFiles(ctx, node, { kind: 'primary' }, partial);
    writeMarker(partial, ctx.cfg, node, readSystemIdentifier(partial)!, ctx.user);
    moveIntoPlace(partial, node.dataDir);
  }

  async checkConfig(spec: RoleSpec): Promise<void> {
    await checkNodeFiles(this.ctx, this.node, this.role(spec));
  }

  async configure(spec: RoleSpec): Promise<NodeChange> {
    return applyNodeFiles(this.ctx, this.node, this.role(spec), requireSecrets(this.ctx));
  }

  async start(): Promise<'started' | 'running'> {
    const { node, ctx } = this;
    if (postmasterPid(node.dataDir) !== null) return 'running';
    if (!ctx.lab) await assertPortFree(node, ctx.cfg.file);
    await pgStart(ctx.bins, nodeUser(ctx.user, ctx.lab, node), node.dataDir, ctx.paths.nodeLog(node));
    return 'started';
  }

  async stop(mode: 'fast' | 'immediate' = 'fast', timeoutSec = 120): Promise<'stopped' | 'not running'> {
    if (postmasterPid(this.node.dataDir) === null) return 'not running';
    await pgStop(this.ctx.bins, this.ctx.user, this.node.dataDir, mode, timeoutSec);
    return 'stopped';
  }

  /** See fencePostmaster: an immediate stop that also works on a frozen postmaster. */
  async fence(): Promise<'fenced' | 'not running'> {
    return fencePostmaster(this.node.dataDir);
  }

  async promote(): Promise<number> {
    return promoteNode(this.ctx, this.node, requireSecrets(this.ctx));
  }

  async clone(upstream: string): Promise<{ bytes: number; ms: number }> {
    return cloneReplica(this.ctx, this.node, findNode(this.ctx.cfg, upstream), requireSecrets(this.ctx), () => undefined);
  }

  async rebuild(upstream: string, opts: { fresh?: boolean } = {}): Promise<{ how: 'pg_rewind' | 'a fresh clone'; log: string[] }> {
    const { node, ctx } = this;
    const primary = findNode(ctx.cfg, upstream);
    const secrets = requireSecrets(ctx);
    const log: string[] = [];
    await this.stop('fast', 60);
    const rewind = ctx.bins.tool('pg_rewind');
    let how: 'pg_rewind' | 'a fresh clone';
    if (rewind && !opts.fresh && fs.existsSync(node.dataDir) && (await this.tryRewind(rewind, primary, log))) {
      how = 'pg_rewind';
    } else {
      const aside = `${node.dataDir}.before-rejoin-${new Date().toISOString().replace(/[-:.]/g, '')}`;
      if (fs.existsSync(node.dataDir)) {
        fs.renameSync(node.dataDir, aside);
        if (fs.existsSync(`${node.dataDir}_tablespaces`)) fs.renameSync(`${node.dataDir}_tablespaces`, `${aside}_tablespaces`);
        log.push(`${node.name}: old data kept in ${aside}`);
      }
      await cloneWithFreshSlot(ctx, node, primary, secrets, (l) => log.push(l));
      how = 'a fresh clone';
    }
    if (readMarker(node.dataDir)?.node !== node.name || how === 'pg_rewind') writeMarker(node.dataDir, ctx.cfg, node, readSystemIdentifier(node.dataDir)!, ctx.user);
    return { how, log };
  }

  private async tryRewind(tool: string, primary: NodeConfig, log: string[]): Promise<boolean> {
    const { ctx, node } = this;
    // pg_rewind reads the source's timeline from its control file, which a
    // fresh promotion updates only at its next checkpoint.
    await withClient(adminTarget(ctx, primary, requireSecrets(ctx)), (c) => c.query('CHECKPOINT'));
    const source = `host=${primary.admin} port=${primary.port} user=${ctx.cfg.superuser} dbname=postgres`;
    const r = await run(tool, ['--target-pgdata', node.dataDir, '--source-server', source], {
      user: nodeUser(ctx.user, ctx.lab, node),
      env: { PGPASSFILE: ctx.paths.superuserPassfile },
      timeoutMs: 3600_000,
    });
    if (r.code === 0) {
      log.push(`pg_rewind: ${(r.stdout + r.stderr).trim().split('\n').slice(-2).join(' / ')}`);
      return true;
    }
    const kept = keepOutput(ctx.paths.logsDir, 'pg_rewind', r.stderr + r.stdout);
    log.push(`pg_rewind could not rewind ${node.dataDir} (${firstCause(r.stderr + r.stdout)}${kept ? `; full output in ${kept}` : ''}); cloning afresh instead`);
    return false;
  }

  async reclone(upstream: string, log: (line: string) => void): Promise<string> {
    return recloneHere(this.ctx, this.node, findNode(this.ctx.cfg, upstream), requireSecrets(this.ctx), log);
  }

  async coldBackup(): Promise<BackupInfo> {
    const { coldBackup } = await import('../backup/cold.js');
    return coldBackup(this.ctx, Repository.open(this.ctx, 'write'), this.node.name, { quiet: this.ctx.host !== null });
  }

  async restoreFromRepository(target: RestoreTarget, log: (line: string) => void): Promise<string> {
    const { restoreNode } = await import('../restore/restore-node.js');
    return restoreNode(this.ctx, Repository.open(this.ctx, 'write'), this.node.name, target, log);
  }

  async checkpoint(): Promise<ControlCheckpoint> {
    return readControlCheckpoint(this.node.dataDir);
  }

  async logTail(lines = 3): Promise<string> {
    return serverLogTail(this.node, lines);
  }
}
