import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { ClusterContext } from '../cluster/context.js';
import { PgmError, type ErrorCode } from '../errors.js';

/** The daemon's control socket: a Unix socket only root (or the owner) can reach. */
export function socketPath(ctx: ClusterContext): string {
  const p = path.join(ctx.paths.stateDir, 'daemon.sock');
  if (p.length < 100) return p;
  return path.join(os.tmpdir(), `pgmaestro-${crypto.createHash('sha256').update(p).digest('hex').slice(0, 16)}.sock`);
}

export type Handler = (body: Record<string, unknown>) => Promise<string>;

/** Serves POST /<verb> with a JSON body; answers { sentence } or { error: { code, message, hint } }. */
export function serveApi(ctx: ClusterContext, handlers: Record<string, Handler>): Promise<http.Server> {
  const sock = socketPath(ctx);
  fs.rmSync(sock, { force: true });
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', async () => {
      const verb = (req.url ?? '/').slice(1);
      const h = handlers[verb];
      const reply = (status: number, obj: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(obj));
      };
      if (!h) return reply(404, { error: { code: 'usage', message: `the daemon has no command ${verb}.`, hint: 'upgrade the daemon: pgmaestro down && pgmaestro up.' } });
      try {
        reply(200, { sentence: await h(body ? (JSON.parse(body) as Record<string, unknown>) : {}) });
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

/** Asks the running daemon to do `verb`; null when no daemon answers (the caller then acts itself). */
export function callDaemon(ctx: ClusterContext, verb: string, body: Record<string, unknown>): Promise<string | null> {
  const sock = socketPath(ctx);
  if (!fs.existsSync(sock)) return Promise.resolve(null);
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: sock, path: `/${verb}`, method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        const r = JSON.parse(text) as { sentence?: string; error?: { code: ErrorCode; message: string; hint?: string } };
        if (r.error) reject(new PgmError(r.error.code, r.error.message, { hint: r.error.hint }));
        else resolve(r.sentence ?? '');
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNREFUSED' || err.code === 'ENOENT' ? resolve(null) : reject(err)));
    req.end(JSON.stringify(body));
  });
}
