import type { ClusterContext } from '../cluster/context.js';
import type { ClusterState } from '../cluster/state.js';
import { noPrimaryReason, primaryFromState } from './balance.js';

/** What an endpoint process follows in the cluster state. */
export interface Followed {
  /** The primary to forward writes to; null while there is none (fenced, promotion pending). */
  readonly primary: string | null;
  readonly fenced: readonly string[];
  /** One clause saying why, for the log. */
  readonly reason: string;
}

/**
 * Follows the cluster state through the state store only (never through the
 * daemon), so an endpoint goes on forwarding to the last recorded primary
 * while no daemon runs, and moves when a restarted daemon (or, in multi-host
 * mode, another host's controller) records a new one. Reads every
 * `intervalMs`, and at once on `refresh()` (the daemon's nudge after it wrote
 * the state). `onChange` is called only when what is followed changed, and
 * calls never overlap.
 */
export class StateFollower {
  private last: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<Followed | null> = Promise.resolve(null);
  private stopped = false;

  constructor(
    private readonly ctx: ClusterContext,
    private readonly onChange: (f: Followed) => Promise<void> | void,
    private readonly intervalMs = 250,
  ) {}

  /** Applies the state once (awaited), then keeps following. */
  async start(): Promise<Followed> {
    const f = await this.refresh();
    this.schedule();
    return f;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** Reads the state now and applies it; resolves once applied. */
  refresh(): Promise<Followed> {
    const run = this.running.then(() => this.apply());
    this.running = run.catch(() => null);
    return run;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.refresh()
        .catch(() => undefined) // a torn or unreadable state: keep the last one, try again
        .finally(() => this.schedule());
    }, this.intervalMs);
  }

  private async apply(): Promise<Followed> {
    const st: ClusterState | null = await this.ctx.store.read();
    const f = followed(this.ctx, st);
    const key = JSON.stringify([f.primary, [...f.fenced].sort()]);
    if (key !== this.last) {
      this.last = key;
      await this.onChange(f);
    }
    return f;
  }
}

export function followed(ctx: ClusterContext, st: ClusterState | null): Followed {
  const primary = primaryFromState(ctx.cfg, st);
  return {
    primary,
    fenced: st?.fenced ?? [],
    reason: primary ? `the cluster state names ${primary} the primary` : (noPrimaryReason(ctx.cfg, st) ?? 'no primary'),
  };
}
