import fs from 'node:fs';
import { openCluster, type ClusterContext } from '../cluster/context.js';
import { loadConfig } from '../config/load.js';
import { errorMessage } from '../errors.js';

/**
 * A long-running process's view of the configuration, kept current: when
 * pgmaestro.yaml or a node's override file changes, the next `current()`
 * reads it again, so a daemon never rewrites a node's files from a stale
 * configuration (a switchover or a re-pointed replica would otherwise undo a
 * change `up` or `reload` has just made). A file made invalid is reported
 * once and the last valid configuration stays in use. What is bound at start
 * (listening ports, the schedule) follows only a restart of the process.
 */
export class LiveConfig {
  private stamp: string;
  private reported = '';

  constructor(
    private ctx: ClusterContext,
    private readonly log: (line: string) => void,
    /** How to open the changed configuration (an agent opens it for its host, keeping its store). */
    private readonly reopen: (file: string) => Promise<ClusterContext> = (file) => openCluster(loadConfig(file), (l) => this.log(l)),
  ) {
    this.stamp = stampOf(ctx);
  }

  async current(): Promise<ClusterContext> {
    const now = stampOf(this.ctx);
    if (now === this.stamp) return this.ctx;
    try {
      const next = await this.reopen(this.ctx.cfg.file);
      this.ctx = next;
      this.stamp = stampOf(next);
      this.reported = '';
      this.log(`configuration ${this.ctx.cfg.file} changed: read it again`);
    } catch (err) {
      if (this.reported !== now) this.log(`configuration ${this.ctx.cfg.file} changed but cannot be used (${errorMessage(err)}); keeping the previous one`);
      this.reported = now;
    }
    return this.ctx;
  }
}

/** Size and modification time of the configuration and every override file (absent ones too). */
function stampOf(ctx: ClusterContext): string {
  return [ctx.cfg.file, ...ctx.cfg.nodes.map((n) => n.overrideFile)]
    .map((f) => {
      try {
        const st = fs.statSync(f);
        return `${st.size}:${st.mtimeMs}`;
      } catch {
        return '-';
      }
    })
    .join('|');
}
