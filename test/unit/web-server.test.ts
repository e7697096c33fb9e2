import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { ClusterContext } from '../../src/cluster/context.js';
import { startConsole, type ConsoleService } from '../../src/web/console.js';
import type { ConsoleInputs } from '../../src/web/source.js';
import { inputs } from '../helpers/console-inputs.js';

/**
 * The console's HTTP layer on a real socket (port 16500) over a scripted
 * observation: who gets in, what leaves, what an operator can do and how.
 * The real cluster behind it is test/integration/console-pg18.test.ts.
 */
const PORT = 16500;
const BASE = `http://127.0.0.1:${PORT}`;
const PASSWORD = 'superuser-password-1234567890';
let dir: string;
let web: ConsoleService;
let observed: ConsoleInputs;
const calls: string[] = [];

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(p: string, o: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${BASE}${p}`, { method: o.method ?? 'GET', headers: o.headers }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(o.body);
  });
}
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
const token = (which: 'read' | 'operator') => fs.readFileSync(web.tokens[which], 'utf8').trim();

/** Reads a server-sent event stream until `want` events named `name` arrived. */
function events(headers: Record<string, string>, name: string, want: number, during?: () => void): Promise<{ event: string; data: string }[]> {
  return new Promise((resolve, reject) => {
    const got: { event: string; data: string }[] = [];
    const req = http.get(`${BASE}/api/stream`, { headers }, (res) => {
      let buf = '';
      res.on('data', (d) => {
        buf += d;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const ev = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (ev && data !== undefined) {
            got.push({ event: ev, data });
            if (got.filter((g) => g.event === name).length === 1) during?.();
            if (got.filter((g) => g.event === name).length >= want) {
              req.destroy();
              resolve(got);
            }
          }
        }
      });
      res.on('end', () => resolve(got)); // the server ended the stream
    });
    req.on('error', (err) => (got.length > 0 ? resolve(got) : reject(err)));
  });
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-web-'));
  const secretsDir = path.join(dir, 'secrets');
  fs.mkdirSync(secretsDir, { mode: 0o700 });
  fs.writeFileSync(path.join(secretsDir, 'superuser.password'), PASSWORD + '\n', { mode: 0o600 });
  fs.writeFileSync(path.join(secretsDir, 'superuser.pgpass'), `*:*:*:postgres:${PASSWORD}\n`, { mode: 0o600 });
  const base = inputs();
  // as if an error sentence of some lower layer had carried the password: it must not leave the console
  observed = { ...base, status: { ...base.status!, nodes: base.status!.nodes.map((n) => (n.name === 'node3' ? { ...n, error: `password authentication failed (tried "${PASSWORD}")` } : n)) } };
  const ctx = { paths: { secretsDir } } as unknown as ClusterContext;
  web = await startConsole(ctx, {
    host: '127.0.0.1',
    port: PORT,
    source: { observe: async () => ({ ...observed, at: new Date() }) },
    actions: {
      switchover: async (to, by) => (calls.push(`switchover ${to} by ${by}`), `switched over to ${to} (timeline 3)`),
      backup: async (type) => (calls.push(`backup ${type}`), `${type} backup started`),
    },
    sampling: { watchedMs: 200, idleMs: 200 },
  });
});
after(async () => {
  await web?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('two tokens are generated, 0600, different; without one everything but the login and static files answers 401', async () => {
  for (const f of [web.tokens.read, web.tokens.operator]) assert.equal(fs.statSync(f).mode & 0o777, 0o600);
  assert.notEqual(token('read'), token('operator'));
  assert.ok(token('read').length >= 40);

  const page = await request('/');
  assert.equal(page.status, 401);
  assert.match(page.body, /<form method="post" action="\/login">/);
  assert.match(String(page.headers['www-authenticate']), /^Bearer/);
  for (const p of ['/metrics', '/api/view', '/api/stream']) assert.equal((await request(p)).status, 401, p);
  assert.equal((await request('/metrics', { headers: bearer('not-the-token') })).status, 401);
  assert.equal((await request('/api/view', { headers: { cookie: 'pgmaestro_console=%E0%A4%A' } })).status, 401, 'a malformed cookie is no access and no crash');
  assert.equal((await request('/static/uplot.js')).status, 200);
  assert.match(String((await request('/static/console.js')).headers['content-security-policy']), /script-src 'self'/);
  const up = await request('/static/../secrets/superuser.password');
  assert.notEqual(up.status, 200);
  assert.ok(!up.body.includes(PASSWORD));
});

test('the login form trades a token for a session cookie that is not the token; a wrong token is refused', async () => {
  const wrong = await request('/login', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'token=nope' });
  assert.equal(wrong.status, 401);
  assert.match(wrong.body, /That token is not valid/);
  const ok = await request('/login', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${encodeURIComponent(token('read'))}` });
  assert.equal(ok.status, 303);
  const cookie = String(ok.headers['set-cookie']);
  assert.match(cookie, /^pgmaestro_console=[^;]+; HttpOnly; SameSite=Strict; Path=\//);
  assert.ok(!cookie.includes(token('read')), 'the cookie holds a derived value, not the token');
  const page = await request('/', { headers: { cookie: cookie.split(';')[0] } });
  assert.equal(page.status, 200);
  assert.match(page.body, /<title>pgmaestro console<\/title>/);
});

test('nothing that leaves the console holds a secret: view, stream, metrics, page', async () => {
  const view = await request('/api/view', { headers: bearer(token('read')) });
  assert.equal(view.status, 200);
  const v = JSON.parse(view.body) as { nodes: { name: string; error: string | null }[] };
  assert.equal(v.nodes.find((n) => n.name === 'node3')?.error, 'password authentication failed (tried "[redacted]")');
  const stream = await events(bearer(token('operator')), 'view', 1);
  const metrics = await request('/metrics', { headers: bearer(token('read')) });
  const page = await request('/', { headers: bearer(token('read')) });
  for (const [what, text] of [['view', view.body], ['stream', stream.map((e) => e.data).join('\n')], ['metrics', metrics.body], ['page', page.body]]) {
    for (const secret of [PASSWORD, token('read'), token('operator')]) assert.ok(!text.includes(secret), `${what} holds no secret`);
  }
});

test('the stream says hello with the access, sends the history, then a view per observation', async () => {
  const got = await events(bearer(token('read')), 'view', 3, () => web.refresh());
  assert.deepEqual(JSON.parse(got[0].data), { access: 'read', actions: false });
  assert.equal(got[1].event, 'history');
  assert.ok(Array.isArray(JSON.parse(got[1].data)));
  const views = got.filter((e) => e.event === 'view').map((e) => JSON.parse(e.data) as { at: string; primary: string });
  assert.equal(views[0].primary, 'node1');
  assert.ok(views[2].at > views[0].at, 'later observations follow');
  const op = await events(bearer(token('operator')), 'view', 1);
  assert.deepEqual(JSON.parse(op[0].data), { access: 'operator', actions: true });
});

test('operator actions: only with the operator token, a JSON body, the same origin and a typed confirmation', async () => {
  const json = (t: string, extra: Record<string, string> = {}) => ({ ...bearer(t), 'content-type': 'application/json', ...extra });
  const post = (p: string, headers: Record<string, string>, body: unknown) => request(p, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });

  const readOnly = await post('/api/switchover', json(token('read')), { to: 'node2', confirm: 'node2' });
  assert.equal(readOnly.status, 403);
  assert.match(readOnly.body, /needs the operator token; this session is read-only/);
  const op = token('operator');
  assert.equal((await post('/api/switchover', json(op), { to: 'node2' })).status, 400, 'no confirmation');
  assert.equal((await post('/api/switchover', json(op), { to: 'node2', confirm: 'node3' })).status, 400, 'the wrong confirmation');
  assert.equal((await post('/api/switchover', { ...bearer(op), 'content-type': 'text/plain' }, { to: 'node2', confirm: 'node2' })).status, 415);
  assert.equal((await post('/api/switchover', json(op, { origin: 'http://evil.example' }), { to: 'node2', confirm: 'node2' })).status, 403);
  assert.equal((await post('/api/switchover', json(op), '{not json')).status, 400);
  assert.equal((await post('/api/switchover', json(op), { to: 'x'.repeat(20000), confirm: 'x' })).status, 400, 'a body over the limit');
  assert.equal((await post('/api/backup', json(op), { type: 'cold', confirm: 'cold' })).status, 400);
  assert.deepEqual(calls, [], 'nothing was done by any of those');

  const sw = await post('/api/switchover', json(op, { origin: BASE }), { to: 'node2', confirm: 'node2' });
  assert.equal(sw.status, 200);
  assert.deepEqual(JSON.parse(sw.body), { sentence: 'switched over to node2 (timeline 3)' });
  const bk = await post('/api/backup', json(op), { type: 'incr', confirm: 'incr' });
  assert.equal(bk.status, 202);
  assert.equal(calls.length, 2);
  assert.match(calls[0], /^switchover node2 by the console \(operator session from 127\.0\.0\.1\)$/);
});

test('a new token in the file takes effect at once and ends the old sessions; an emptied file grants nothing', async () => {
  const oldToken = token('read');
  const login = await request('/login', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${oldToken}` });
  const cookie = String(login.headers['set-cookie']).split(';')[0];
  // a stream opened with the old token ends at its next update after the change
  const streamEnded = events({ cookie }, 'view', 1000, () => fs.writeFileSync(web.tokens.read, 'a-brand-new-read-token-0123456789abcdef\n', { mode: 0o600 }));
  const ended = await streamEnded;
  assert.ok(ended.filter((e) => e.event === 'view').length < 1000);
  assert.equal((await request('/api/view', { headers: bearer(oldToken) })).status, 401);
  assert.equal((await request('/api/view', { headers: { cookie } })).status, 401);
  assert.equal((await request('/api/view', { headers: bearer('a-brand-new-read-token-0123456789abcdef') })).status, 200);
  fs.writeFileSync(web.tokens.read, '\n');
  assert.equal((await request('/api/view', { headers: bearer('') })).status, 401);
});

test('garbage on the socket closes that connection only; the console keeps answering', async () => {
  await new Promise<void>((resolve) => {
    const s = net.connect(PORT, '127.0.0.1', () => s.write('\x16\x03\x01 this is not HTTP\r\n\r\n'));
    s.on('close', () => resolve());
    s.on('error', () => resolve());
  });
  assert.equal((await request('/api/view', { headers: bearer(token('operator')) })).status, 200);
  assert.equal((await request('/nothing-here', { headers: bearer(token('operator')) })).status, 404);
});
