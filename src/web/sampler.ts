import type { ConsoleInputs, ConsoleSource } from './source.js';
import { buildView, type ConsoleView, type SamplePoint } from './view.js';

export interface SamplerOptions {
  /** Between observations while someone watches (default 2 s). */
  readonly watchedMs?: number;
  /** Between observations while nobody does, to keep the charts' hour (default 10 s). */
  readonly idleMs?: number;
  /** How much history the charts keep (default one hour). */
  readonly historyMs?: number;
  readonly log?: (line: string) => void;
}

/**
 * Observes the cluster on a timer and keeps the latest view plus an hour of
 * chart points. Observations never overlap; `refresh()` asks for one now
 * (the daemon calls it on every event, so a failover shows at once). A
 * failed observation keeps the previous view and says so in its problems.
 */
export class Sampler {
  private latestView: ConsoleView | null = null;
  private latestInputs: ConsoleInputs | null = null;
  private readonly points: SamplePoint[] = [];
  private readonly listeners = new Set<(v: ConsoleView) => void>();
  private running: Promise<ConsoleView> | null = null;
  private again = false;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly watchedMs: number;
  private readonly idleMs: number;
  private readonly historyMs: number;

  constructor(
    private readonly source: ConsoleSource,
    private readonly opts: SamplerOptions = {},
  ) {
    this.watchedMs = opts.watchedMs ?? 2000;
    this.idleMs = opts.idleMs ?? 10_000;
    this.historyMs = opts.historyMs ?? 3600_000;
  }

  start(): this {
    void this.refresh();
    return this;
  }

  stop(): Promise<unknown> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.listeners.clear();
    return this.running ?? Promise.resolve();
  }

  get view(): ConsoleView | null {
    return this.latestView;
  }

  get inputs(): ConsoleInputs | null {
    return this.latestInputs;
  }

  get history(): readonly SamplePoint[] {
    return this.points;
  }

  /** Calls `fn` with every new view; returns the unsubscribe function. */
  subscribe(fn: (v: ConsoleView) => void): () => void {
    this.listeners.add(fn);
    if (this.listeners.size === 1) this.schedule(0); // someone watches now: sample at the faster pace
    return () => this.listeners.delete(fn);
  }

  /** A view no older than `maxAgeMs`, observing now if needed. */
  async fresh(maxAgeMs: number): Promise<ConsoleView> {
    const v = this.latestView;
    if (v && Date.now() - Date.parse(v.at) <= maxAgeMs) return v;
    return this.refresh();
  }

  /** Observes now (or right after the observation in progress). */
  refresh(): Promise<ConsoleView> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.observe().finally(() => {
      this.running = null;
      if (this.again && !this.stopped) {
        this.again = false;
        void this.refresh();
      } else this.schedule(this.listeners.size > 0 ? this.watchedMs : this.idleMs);
    });
    return this.running;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.refresh(), ms);
    this.timer.unref();
  }

  private async observe(): Promise<ConsoleView> {
    let inputs: ConsoleInputs;
    try {
      inputs = await this.source.observe();
    } catch (err) {
      // a source is not supposed to throw; if it does, the page still gets a view saying so
      const prev = this.latestInputs;
      inputs = { at: new Date(), status: prev?.status ?? null, error: `the cluster could not be observed: ${(err as Error).message}`, events: prev?.events ?? [], repository: prev?.repository ?? { ok: false, error: 'not observed yet' }, endpoints: [], monitor: null };
      this.opts.log?.(inputs.error!);
    }
    const view = buildView(inputs, this.points[this.points.length - 1] ?? null);
    this.latestInputs = inputs;
    this.latestView = view;
    this.points.push(view.sample);
    const oldest = view.sample.t - this.historyMs / 1000;
    while (this.points.length > 0 && this.points[0].t < oldest) this.points.shift();
    for (const fn of this.listeners) {
      try {
        fn(view);
      } catch {
        // a listener's failure (a closed socket) is its own business
      }
    }
    return view;
  }
}
