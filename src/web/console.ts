import type { ClusterContext } from '../cluster/context.js';
import { loadAssets } from './assets.js';
import { TokenAuth, ensureConsoleTokens, type ConsoleAuth } from './auth.js';
import { DaemonCounters, MetricsRenderer } from './metrics.js';
import { Redactor } from './redact.js';
import { Sampler, type SamplerOptions } from './sampler.js';
import { ConsoleHttpServer, type ConsoleActions } from './server.js';
import { clusterSource, type ConsoleSource, type SourceHooks } from './source.js';

/**
 * The web console and /metrics, as one service any long-running process can
 * host: the lab daemon today, every agent of a multi-host cluster later.
 *
 *   const web = await startConsole(ctx, { host, port, hooks, actions, counters, log });
 *   web.refresh();   // something happened (an event): observe now
 *   await web.stop();
 */
export interface ConsoleService {
  /** host:port it listens on. */
  readonly address: string;
  readonly tokens: { readonly read: string; readonly operator: string };
  refresh(): void;
  stop(): Promise<void>;
}

export interface ConsoleStartOptions {
  readonly host: string;
  readonly port: number;
  /** What the host process knows beyond clusterStatus(): its endpoints, its monitor. */
  readonly hooks?: SourceHooks;
  /** Replaces the lab source entirely (an agent reading etcd, say). */
  readonly source?: ConsoleSource;
  /** Replaces the token check (an agent checking client certificates, say). */
  readonly auth?: ConsoleAuth;
  readonly actions?: ConsoleActions | null;
  readonly counters?: DaemonCounters;
  readonly sampling?: SamplerOptions;
  readonly log?: (line: string) => void;
}

export async function startConsole(ctx: ClusterContext, o: ConsoleStartOptions): Promise<ConsoleService> {
  const log = o.log ?? (() => undefined);
  // 1. the tokens, generated once into the secrets directory
  const tokens = ensureConsoleTokens(ctx.paths.secretsDir);
  // 2. the observation loop, the metrics, the redactor
  const sampler = new Sampler(o.source ?? clusterSource(ctx, o.hooks), { ...o.sampling, log });
  const metrics = new MetricsRenderer(o.counters ?? new DaemonCounters());
  const redactor = new Redactor(ctx.paths.secretsDir);
  // 3. the server
  const server = new ConsoleHttpServer({ host: o.host, port: o.port, sampler, auth: o.auth ?? new TokenAuth(tokens), redactor, metrics, assets: loadAssets(), actions: o.actions ?? null, log });
  await server.listen();
  sampler.start();
  return {
    address: server.address,
    tokens,
    refresh: () => void sampler.refresh(),
    async stop() {
      await server.close();
      await sampler.stop();
    },
  };
}
