import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { ClusterContext } from '../cluster/context.js';
import { PgmError, type ErrorCode } from '../errors.js';

/**
 * Control sockets: Unix sockets (mode 0600, so only root or the owner can
 * reach them) under the state directory, speaking JSON over HTTP. The daemon
 * has one (`daemon.sock`: the CLI's operator commands), and so has each
 * endpoint process (`endpoint-<kind>.sock`: stats and refresh).
 */
export function socketPath(ctx: ClusterContext, name = 'daemon'): string {
  const p = path.join(ctx.paths.stateDir, `${name}.sock`);
  if (p.length < 100) return p;
  return path.join(os.tmpdir(), `pgmaestro-${crypto.createHash('sha256').update(p).digest('hex').slice(0, 16)}.sock`);
}

export type Handler = (body: Record<string, unknown>) => Promise<unknown>;

/** Serves `<METHOD> /<verb>` with a JSON body; answers { result } or { error: { code, message, hint } }. */
export function serveControl(sock: string, handlers: Record<string, Handler>): Promise<http.Server> {
  fs.rmSync(sock, { force: true });
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', async () => {
      const verb = (req.url ?? '/').slice(1);
      const h = handlers[verb];
      const reply = (status: number, obj: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(obj, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
      };
      if (!h) return reply(404, { error: { code: 'usage', message: `this process has no command ${verb}.`, hint: 'upgrade it: pgmaestro down && pgmaestro up.' } });
      try {
        reply(200, { result: await h(body ? (JSON.parse(body) as Record<string, unknown>) : {}) });
      } catch (err) {
        const e = err instanceof PgmError ? err : new PgmError('daemon.failed', (err as Error).message.replace(/\.$/, '') + '.', { cause: err });
        reply(200, { error: { code: e.code, message: e.message, hint: e.hint } });
      }
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(sock, () => {
      fs.chmodSync(sock, 0o600);
      resolve(server);
    });
  });
}

/** Asks the process behind `sock` to do `verb`; null when nothing listens there. A timeout (`timeoutMs` > 0) rejects. */
export function callControl(sock: string, verb: string, body: Record<string, unknown>, timeoutMs = 0): Promise<unknown> {
  if (!fs.existsSync(sock)) return Promise.resolve(null);
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: sock, path: `/${verb}`, method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        let r: { result?: unknown; error?: { code: ErrorCode; message: string; hint?: string } };
        try {
          r = JSON.parse(text) as typeof r;
        } catch {
          return reject(new Error(`the process behind ${sock} closed mid-answer`));
        }
        if (r.error) reject(new PgmError(r.error.code, r.error.message, { hint: r.error.hint }));
        else resolve(r.result ?? null);
      });
    });
    if (timeoutMs > 0) req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    // Nothing listening means no such process; any other failure (a reset, a timeout) is the caller's to judge.
    req.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNREFUSED' || err.code === 'ENOENT' ? resolve(null) : reject(err)));
    req.end(JSON.stringify(body));
  });
}

/** The daemon's control socket: each handler returns the sentence for the event log. */
export function serveApi(ctx: ClusterContext, handlers: Record<string, (body: Record<string, unknown>) => Promise<string>>): Promise<http.Server> {
  return serveControl(socketPath(ctx), handlers);
}

/** Asks the running daemon to do `verb`; null when no daemon answers (the caller then acts itself). */
export async function callDaemon(ctx: ClusterContext, verb: string, body: Record<string, unknown>): Promise<string | null> {
  const r = await callControl(socketPath(ctx), verb, body);
  return r === null ? null : String(r);
}
