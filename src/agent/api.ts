import https from 'node:https';
import type { ClusterContext } from '../cluster/context.js';
import { findNode } from '../cluster/context.js';
import type { RoleSpec } from '../cluster/node-control.js';
import type { RestoreTarget } from '../restore/plan.js';
import { PgmError } from '../errors.js';
import type { TlsIdentity } from './certs.js';
import { commonName } from './certs.js';
import { healthStatus, type HealthFacts } from './health.js';
import { serverOptions } from './http.js';

/** What the API needs from the running agent besides node control. */
export interface AgentHandlers {
  /** Health facts of a node of this host (default: its first). */
  health(node: string | null): HealthFacts;
  /** A primary's agent cut off from etcd reached us: remember it (it vetoes promotions for a ttl). */
  failsafe(from: string): void;
  failsafeSeen(): { from: string; ageMs: number } | null;
  /** Refuses a promotion the state in etcd does not call for (a stale controller, a replayed request). */
  checkPromotion(node: string): Promise<void>;
  /** An operator command (switchover, failover, rejoin, backup-cold, restore-node): its sentence. */
  command(verb: string, body: Record<string, unknown>): Promise<string>;
  /** Called after a local fence: the endpoint stops forwarding, the lease is given up. */
  fenced(node: string, reason: string): void;
  /** What the agent is doing, for status: GET /v1/info. */
  info(): AgentInfo;
  /** Runs a verb that changes `node` (start, stop, clone…): the agent leaves the node alone meanwhile. */
  around<T>(node: string, verb: string, fn: () => Promise<T>): Promise<T>;
}

export interface AgentInfo {
  readonly host: string;
  readonly pid: number;
  /** Holds the controller lease. */
  readonly controller: boolean;
  /** The etcd member its requests go to now. */
  readonly etcd: string;
  /** The node it holds the primary lease for. */
  readonly primaryLease: string | null;
}

/** Verbs that only look. */
const READ_ONLY = new Set(['inspect', 'preflight', 'check-config', 'checkpoint', 'log-tail']);

/**
 * The agent's HTTPS API (mutual TLS only: a client without a certificate of
 * the cluster CA never gets an answer):
 *   POST /v1/node/<verb>   node control of this host's nodes ({ node, ... })
 *   POST /v1/failsafe      a primary's agent cut off from etcd says it is alive
 *   POST /v1/command/<verb> operator commands; the controller runs the HA ones
 *   GET  /v1/info          what the agent does (controller, etcd member, primary lease)
 *   GET  /primary /replica[?lag=N] /read-only /health   Patroni-compatible checks, 200 or 503
 */
export function createAgentServer(ctx: ClusterContext, id: TlsIdentity, h: AgentHandlers, log: (s: string) => void): https.Server {
  const mine = new Set(ctx.cfg.nodes.filter((n) => n.host === id.host).map((n) => n.name));
  const server = https.createServer(serverOptions(id), (req, res) => {
    const url = new URL(req.url ?? '/', 'https://agent');
    const reply = (status: number, body: unknown) => {
      const text = typeof body === 'string' ? body : JSON.stringify(body);
      res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json' });
      res.end(text);
    };
    if (req.method === 'GET' && url.pathname === '/v1/info') return reply(200, h.info());
    if (req.method === 'GET') {
      const status = healthStatus(url.pathname, url.searchParams, h.health(url.searchParams.get('node')));
      if (status === null) return reply(404, 'unknown check\n');
      return reply(status, status === 200 ? 'ok\n' : 'unavailable\n');
    }
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (text += d));
    req.on('end', async () => {
      try {
        const body = text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
        const result = await route(url.pathname, body);
        reply(200, { result: result === undefined ? null : result });
      } catch (err) {
        const e = err instanceof PgmError ? err : new PgmError('agent.refused', `${(err as Error).message.replace(/\.$/, '')}.`, { cause: err });
        reply(200, { error: { code: e.code, message: e.message, hint: e.hint } });
      }
    });
  });
  server.on('tlsClientError', () => undefined); // a client without our CA's certificate: refused by TLS, nothing to log per attempt

  async function route(p: string, body: Record<string, unknown>): Promise<unknown> {
    if (p === '/v1/failsafe') {
      h.failsafe(String(body.from));
      return 'ok';
    }
    const cmd = /^\/v1\/command\/([a-z-]+)$/.exec(p);
    if (cmd) return h.command(cmd[1], body);
    const m = /^\/v1\/node\/([a-z-]+)$/.exec(p);
    if (!m) throw new PgmError('usage', `the agent has no verb ${p}.`, { hint: 'run the same version of pgmaestro on every host.' });
    const name = String(body.node);
    if (!mine.has(name)) {
      throw new PgmError('node.unknown', `node ${name} does not run on host ${id.host}.`, { hint: 'ask the agent of the host the configuration names for it (nodes[].host).' });
    }
    const verb = m[1];
    return READ_ONLY.has(verb) ? nodeVerb(name, verb, body) : h.around(name, verb, () => nodeVerb(name, verb, body));
  }

  async function nodeVerb(name: string, verb: string, body: Record<string, unknown>): Promise<unknown> {
    const control = ctx.control(findNode(ctx.cfg, name));
    switch (verb) {
      case 'inspect':
        return { ...(await control.inspect()), failsafe: h.failsafeSeen() };
      case 'preflight':
        return control.preflight();
      case 'init-primary':
        return control.initPrimary();
      case 'check-config':
        return control.checkConfig(roleOf(body.role));
      case 'configure':
        return control.configure(roleOf(body.role));
      case 'start':
        return control.start();
      case 'stop':
        return control.stop(body.mode === 'immediate' ? 'immediate' : 'fast', Number(body.timeoutSec ?? 120));
      case 'fence': {
        const r = await control.fence(String(body.reason ?? 'asked by the controller'));
        h.fenced(name, String(body.reason ?? 'asked by the controller'));
        log(`fenced ${name} (${r}): ${String(body.reason ?? 'asked by the controller')}`);
        return r;
      }
      case 'promote':
        await h.checkPromotion(name);
        return control.promote();
      case 'clone':
        return control.clone(String(body.upstream));
      case 'rebuild':
        return control.rebuild(String(body.upstream), { fresh: body.fresh === true });
      case 'reclone': {
        const lines: string[] = [];
        const sentence = await control.reclone(String(body.upstream), (l) => lines.push(l));
        return { sentence, lines };
      }
      case 'checkpoint': {
        const c = await control.checkpoint();
        return { state: c.state, checkpoint: c.checkpoint.toString(), redo: c.redo.toString(), timeline: c.timeline };
      }
      case 'cold-backup':
        return control.coldBackup();
      case 'restore': {
        const lines: string[] = [];
        const sentence = await control.restoreFromRepository(targetOf(body.target), (l) => lines.push(l));
        return { sentence, lines };
      }
      case 'log-tail':
        return control.logTail(Number(body.lines ?? 3));
      default:
        throw new PgmError('usage', `the agent has no node verb ${verb}.`, { hint: 'run the same version of pgmaestro on every host.' });
    }
  }
  return server;
}

/** A role as the wire carries it, checked: a replica names its upstream node. */
function roleOf(v: unknown): RoleSpec {
  const r = v as { kind?: unknown; upstream?: unknown } | null;
  if (r?.kind === 'primary') return { kind: 'primary' };
  if (r?.kind === 'replica' && typeof r.upstream === 'string') return { kind: 'replica', upstream: r.upstream };
  throw new PgmError('usage', `the role ${JSON.stringify(v)} is neither a primary nor a replica of a named node.`, { hint: 'run the same version of pgmaestro on every host.' });
}

/** A restore target as the wire carries it (a time as its ISO text). */
function targetOf(v: unknown): RestoreTarget {
  const t = (v ?? {}) as Record<string, unknown>;
  switch (t.kind) {
    case 'latest':
      return { kind: 'latest' };
    case 'time':
      return { kind: 'time', time: new Date(String(t.time)) };
    case 'lsn':
    case 'xid':
    case 'name':
      return { kind: t.kind, [t.kind]: String(t[t.kind]) } as RestoreTarget;
    default:
      throw new PgmError('usage', `the restore target ${JSON.stringify(v)} is not one pgmaestro knows.`, { hint: 'run the same version of pgmaestro on every host.' });
  }
}

/** The host a request came from: its certificate's common name. */
export function peerHost(req: { socket: unknown }): string | null {
  const s = req.socket as { getPeerCertificate?: () => { subject?: Record<string, unknown> } };
  const cert = s.getPeerCertificate?.();
  return cert ? commonName(cert) : null;
}
