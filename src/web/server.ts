import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PgmError } from '../errors.js';
import type { Assets } from './assets.js';
import { SESSION_COOKIE, type Access, type ConsoleAuth } from './auth.js';
import type { MetricsRenderer } from './metrics.js';
import type { Redactor } from './redact.js';
import type { Sampler } from './sampler.js';

/**
 * The console's HTTP server. Routes:
 *
 *   GET  /                 the page                       read
 *   GET  /static/<file>    its scripts and styles         anyone (nothing secret or cluster-specific)
 *   POST /login, /logout   token in, session cookie out   anyone
 *   GET  /api/view         the current view as JSON       read
 *   GET  /api/stream       server-sent events: hello, history, then a view per observation   read
 *   GET  /metrics          Prometheus text format         read
 *   POST /api/switchover   { to, confirm: to }            operator
 *   POST /api/backup       { type, confirm: type }        operator
 *
 * Without access: 401 (the page answers with the login form); a read-only
 * token on an operator action: 403. Everything sent goes through the
 * redactor. Operator actions take JSON only and check Origin, so a page of
 * another site cannot make a logged-in browser act.
 */

export interface ConsoleActions {
  /** Switches over to `to`; resolves with the sentence once done. The host records who asked (`requestedBy`) in its event log. */
  switchover(to: string, requestedBy: string): Promise<string>;
  /** Starts a backup; resolves with a sentence once started (the result arrives as an event). */
  backup(type: 'full' | 'incr', requestedBy: string): Promise<string>;
}

export interface ServerOptions {
  readonly host: string;
  readonly port: number;
  readonly sampler: Sampler;
  readonly auth: ConsoleAuth;
  readonly redactor: Redactor;
  readonly metrics: MetricsRenderer;
  readonly assets: Assets;
  /** null: the host process offers no actions (the page then shows none). */
  readonly actions: ConsoleActions | null;
  readonly log: (line: string) => void;
}

const MAX_BODY = 16 * 1024;
const HEARTBEAT_MS = 15_000;
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

export class ConsoleHttpServer {
  private readonly server: http.Server;
  private readonly streams = new Set<http.ServerResponse>();

  constructor(private readonly o: ServerOptions) {
    this.server = http.createServer((req, res) => {
      this.route(req, res).catch((err: unknown) => this.fail(res, err));
    });
    this.server.on('clientError', (_err, socket) => socket.destroy()); // garbage on the socket: drop it, quietly
  }

  /** Resolves once listening; a port in use is a PgmError naming the key to change. */
  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        reject(
          err.code === 'EADDRINUSE' || err.code === 'EACCES' || err.code === 'EADDRNOTAVAIL'
            ? new PgmError('port.in_use', `the console cannot listen on ${this.o.host}:${this.o.port} (${err.code}).`, { hint: 'stop the program that holds it, or set endpoints.console to another host:port (or off).', cause: err })
            : err,
        );
      };
      this.server.once('error', onError);
      this.server.listen(this.o.port, this.o.host, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
  }

  get address(): string {
    const a = this.server.address() as AddressInfo | null;
    return a ? `${a.address}:${a.port}` : `${this.o.host}:${this.o.port}`;
  }

  /** Ends the live streams and stops listening. */
  close(): Promise<void> {
    for (const s of this.streams) s.end();
    this.streams.clear();
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://console');
    const method = req.method ?? 'GET';
    const p = url.pathname;
    if (p.startsWith('/static/')) return this.staticFile(res, p.slice('/static/'.length), method);
    if (p === '/login' && method === 'POST') return this.login(req, res);
    if (p === '/logout' && method === 'POST') return this.redirect(res, `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`);

    const access = this.o.auth.access(req);
    if (!access) return this.unauthorized(res, p === '/' ? 'page' : 'api', '');
    if (method === 'GET' && p === '/') return this.send(res, 200, this.o.assets.page.type, this.o.assets.page.body.toString('utf8'));
    if (method === 'GET' && p === '/api/view') return this.json(res, 200, await this.o.sampler.fresh(2000));
    if (method === 'GET' && p === '/api/stream') return this.stream(req, res, access);
    if (method === 'GET' && p === '/metrics') return this.send(res, 200, this.o.metrics.contentType, await this.o.metrics.render(await this.o.sampler.fresh(1000)));
    if (p === '/api/switchover' || p === '/api/backup') return this.action(req, res, access, p.slice('/api/'.length));
    return this.json(res, 404, { error: { code: 'usage', message: `the console has no ${method} ${p}.`, hint: 'open / for the page, /metrics for Prometheus.' } });
  }

  private staticFile(res: http.ServerResponse, name: string, method: string): void {
    const a = this.o.assets.files.get(name);
    if (!a || method !== 'GET') return this.send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': a.type, 'cache-control': 'no-cache' });
    res.end(a.body);
  }

  private async login(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = await readBody(req);
    const token = new URLSearchParams(body).get('token') ?? '';
    const session = this.o.auth.login(token);
    if (!session) return this.unauthorized(res, 'page', 'That token is not valid. Copy it from secrets/console.token (read-only) or secrets/console-operator.token.');
    this.redirect(res, `${SESSION_COOKIE}=${session.cookie}; HttpOnly; SameSite=Strict; Path=/`);
  }

  private stream(req: http.IncomingMessage, res: http.ServerResponse, access: Access): void {
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    const send = (event: string, data: unknown) => res.write(`event: ${event}\ndata: ${this.o.redactor.redact(JSON.stringify(data))}\n\n`);
    res.write('retry: 2000\n\n');
    send('hello', { access, actions: this.o.actions !== null && access === 'operator' });
    send('history', this.o.sampler.history);
    if (this.o.sampler.view) send('view', this.o.sampler.view);
    this.streams.add(res);
    // a token changed meanwhile ends the stream too; the page then asks for a new login
    const unsubscribe = this.o.sampler.subscribe((v) => (this.o.auth.access(req) === access ? send('view', v) : res.end()));
    const beat = setInterval(() => res.write(': ping\n\n'), HEARTBEAT_MS);
    const end = () => {
      clearInterval(beat);
      unsubscribe();
      this.streams.delete(res);
    };
    req.on('close', end);
    res.on('error', end);
  }

  private async action(req: http.IncomingMessage, res: http.ServerResponse, access: Access, verb: string): Promise<void> {
    const refuse = (status: number, message: string, hint: string) => this.json(res, status, { error: { code: 'usage', message, hint } });
    if (req.method !== 'POST') return refuse(405, `${verb} takes POST.`, 'use the buttons of the page.');
    if (access !== 'operator') return refuse(403, `${verb} needs the operator token; this session is read-only.`, 'log in with the token in secrets/console-operator.token.');
    if (!this.o.actions) return refuse(404, `this console offers no ${verb}.`, 'run the command with the pgmaestro CLI.');
    if (!(req.headers['content-type'] ?? '').startsWith('application/json')) return refuse(415, 'operator actions take a JSON body.', 'send content-type: application/json.');
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== `http://${req.headers.host}` && origin !== `https://${req.headers.host}`) return refuse(403, `a page of ${origin} may not act on this console.`, 'use the console itself.');
    let body: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(await readBody(req));
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
      body = parsed as Record<string, unknown>;
    } catch {
      return refuse(400, 'the request body is not a JSON object.', 'send for example {"to": "node2", "confirm": "node2"}.');
    }
    const by = `the console (operator session from ${req.socket.remoteAddress ?? 'unknown'})`;
    if (verb === 'switchover') {
      const to = typeof body.to === 'string' ? body.to : '';
      if (to === '' || body.confirm !== to) return refuse(400, `a switchover needs a confirmation: type the target's name (${to || 'the node'}).`, 'confirm by typing the node name; nothing was changed.');
      return this.json(res, 200, { sentence: await this.o.actions.switchover(to, by) });
    }
    const type = body.type;
    if (type !== 'full' && type !== 'incr') return refuse(400, `backup type must be full or incr, not ${JSON.stringify(type)}.`, 'send {"type": "full", "confirm": "full"}.');
    if (body.confirm !== type) return refuse(400, `a backup needs a confirmation: type "${type}".`, 'confirm by typing the backup type; nothing was started.');
    return this.json(res, 202, { sentence: await this.o.actions.backup(type, by) });
  }

  private unauthorized(res: http.ServerResponse, kind: 'page' | 'api', message: string): void {
    const headers = { ...SECURITY_HEADERS, 'www-authenticate': 'Bearer realm="pgmaestro console"', 'cache-control': 'no-store' };
    if (kind === 'page') {
      res.writeHead(401, { ...headers, 'content-type': 'text/html; charset=utf-8' });
      res.end(this.o.assets.login.replace('<!--message-->', escapeHtml(message)));
      return;
    }
    res.writeHead(401, { ...headers, 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { code: 'usage', message: 'the console needs a token.', hint: 'send Authorization: Bearer <the content of secrets/console.token>, or log in on the page.' } }));
  }

  private redirect(res: http.ServerResponse, cookie: string): void {
    res.writeHead(303, { ...SECURITY_HEADERS, location: '/', 'set-cookie': cookie, 'cache-control': 'no-store' });
    res.end();
  }

  private json(res: http.ServerResponse, status: number, obj: unknown): void {
    this.send(res, status, 'application/json', JSON.stringify(obj));
  }

  private send(res: http.ServerResponse, status: number, type: string, text: string): void {
    res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type, 'cache-control': 'no-store' });
    res.end(this.o.redactor.redact(text));
  }

  private fail(res: http.ServerResponse, err: unknown): void {
    const e = err instanceof PgmError ? err : new PgmError('daemon.failed', `${(err as Error).message.replace(/\.$/, '')}.`, { hint: 'see the daemon log.', cause: err });
    if (!(err instanceof PgmError)) this.o.log(`console: ${(err as Error).stack ?? String(err)}`);
    if (res.headersSent) return void res.end();
    this.json(res, e.code === 'usage' || e.code === 'node.unknown' ? 400 : e.code === 'busy' ? 409 : 500, { error: { code: e.code, message: e.message, hint: e.hint } });
  }
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    const onData = (d: Buffer) => {
      size += d.length;
      if (size <= MAX_BODY) return void chunks.push(d);
      // refuse, and let the rest drain unread so the answer still reaches the client
      req.off('data', onData);
      req.resume();
      reject(new PgmError('usage', `the request body is larger than ${MAX_BODY} bytes.`, { hint: 'send only what the action needs.' }));
    };
    req.on('data', onData);
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}
