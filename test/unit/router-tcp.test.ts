import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { Endpoint, type EndpointTarget } from '../../src/router/tcp.js';
import { PgmError } from '../../src/errors.js';

/**
 * The endpoint against plain TCP servers on loopback (no PostgreSQL): routing,
 * dropping, holding, half-close, backpressure and leaks. Ports 27000-27019.
 */

const HOST = '127.0.0.1';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A server that greets with its name, then echoes; `opened` counts live server-side sockets. */
class Tagged {
  readonly server: net.Server;
  readonly sockets = new Set<net.Socket>();
  readonly name: string;
  readonly port: number;
  constructor(name: string, port: number) {
    this.name = name;
    this.port = port;
    this.server = net.createServer((s) => {
      this.sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => this.sockets.delete(s));
      s.write(`${name}\n`);
      s.pipe(s);
    });
  }
  get target(): EndpointTarget {
    return { name: this.name, host: HOST, port: this.port };
  }
  async start(): Promise<void> {
    this.server.listen(this.port, HOST);
    await once(this.server, 'listening');
  }
  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }
}

/** Connects through the endpoint and resolves with the greeting line. */
async function dial(port: number): Promise<{ sock: net.Socket; greeting: Promise<string>; closed: Promise<void> }> {
  const sock = net.connect(port, HOST);
  sock.on('error', () => undefined);
  const closed = once(sock, 'close').then(() => undefined);
  const greeting = new Promise<string>((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString();
      const i = buf.indexOf('\n');
      if (i >= 0) {
        sock.off('data', onData);
        resolve(buf.slice(0, i));
      }
    };
    sock.on('data', onData);
    sock.once('close', () => reject(new Error('closed before a greeting')));
  });
  greeting.catch(() => undefined);
  await once(sock, 'connect');
  return { sock, greeting, closed };
}

function tcpHandles(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
}

const A = new Tagged('a', 27001);
const B = new Tagged('b', 27002);
const lines: string[] = [];
let ep: Endpoint;

before(async () => {
  await A.start();
  await B.start();
  ep = new Endpoint({ host: HOST, port: 27000, holdMs: 2_000, connectTimeoutMs: 1_000, log: (s) => lines.push(s) });
  await ep.listen();
});

after(async () => {
  await ep.close();
  await A.stop();
  await B.stop();
});

test('forwards to the target, drops its connections on a change, sends new ones to the new target', async () => {
  assert.equal(ep.address, '127.0.0.1:27000');
  ep.setTarget(A.target, 'initial primary');
  const c1 = await dial(27000);
  assert.equal(await c1.greeting, 'a');
  const sentence = ep.setTarget(B.target, 'failover');
  assert.equal(sentence, 'endpoint 127.0.0.1:27000 now forwards to b (127.0.0.1:27002): failover; dropped 1 connection to a');
  assert.equal(lines.at(-1), sentence);
  await c1.closed;
  const c2 = await dial(27000);
  assert.equal(await c2.greeting, 'b');
  assert.match(ep.setTarget(B.target, 'again'), /already forwards to b/);
  assert.equal(ep.stats.active, 1, 'setting the same target keeps connections');
  c2.sock.end();
  await c2.closed;
});

test('with no target, connections are held and released, bytes sent meanwhile included', async () => {
  ep.setTarget(null, 'fencing a');
  const c = await dial(27000);
  c.sock.write('hello\n');
  await sleep(300);
  assert.equal(ep.stats.held, 1);
  const sentence = ep.setTarget(A.target, 'a promoted');
  assert.match(sentence, /now forwards to a \(127\.0\.0\.1:27001\): a promoted; released 1 held connection$/);
  assert.equal(await c.greeting, 'a');
  const echoed = await new Promise<string>((r) => c.sock.once('data', (d) => r(d.toString())));
  assert.equal(echoed, 'hello\n');
  c.sock.destroy();
  await c.closed;
});

test('a held connection is closed when no target comes within holdMs', async () => {
  const short = new Endpoint({ host: HOST, port: 27003, holdMs: 300 });
  await short.listen();
  try {
    short.setTarget(null, 'fencing');
    const t0 = Date.now();
    const c = await dial(27003);
    await c.closed;
    const waited = Date.now() - t0;
    assert.ok(waited >= 250 && waited < 2_000, `closed after ${waited} ms`);
    assert.equal(short.stats.holdExpired, 1);
    assert.match(short.setTarget(A.target, 'back'), /closed 1 connection held longer than 0\.3 s$/);
  } finally {
    await short.close();
  }
});

test('a target that refuses: the client waits (tried again every 250 ms) up to holdMs, then is closed; logged once per outage', async () => {
  const short = new Endpoint({ host: HOST, port: 27005, holdMs: 700, connectTimeoutMs: 500, log: (s) => lines.push(s) });
  await short.listen();
  try {
    const before = lines.length;
    short.setTarget({ name: 'gone', host: HOST, port: 27019 }, 'test');
    const t0 = Date.now();
    const cs = await Promise.all([0, 1, 2].map(() => dial(27005)));
    await Promise.all(cs.map((c) => c.closed));
    const waited = Date.now() - t0;
    assert.ok(waited >= 600 && waited < 3_000, `closed after ${waited} ms`);
    const logged = lines.slice(before).filter((l) => l.includes('cannot reach gone'));
    assert.equal(logged.length, 1, logged.join('\n'));
    assert.match(logged[0], /ECONNREFUSED\); new connections wait for it \(up to 0\.7 s\)/);
    assert.ok(short.stats.unreachable >= 6, `retried: ${short.stats.unreachable} attempts`);
    assert.equal(short.stats.holdExpired, 3);
  } finally {
    await short.close();
  }
});

test('a target that refuses, then comes back within holdMs: the waiting client gets through', async () => {
  const short = new Endpoint({ host: HOST, port: 27006, holdMs: 3_000, connectTimeoutMs: 500 });
  await short.listen();
  const late = new Tagged('late', 27018);
  try {
    short.setTarget(late.target, 'test');
    const c = await dial(27006);
    c.sock.write('ping\n');
    await sleep(600);
    assert.equal(short.stats.held, 1, 'held while the target refuses');
    await late.start();
    assert.equal(await c.greeting, 'late');
    const echoed = await new Promise<string>((r) => c.sock.once('data', (d) => r(d.toString())));
    assert.equal(echoed, 'ping\n', 'nothing the client sent meanwhile is lost');
    c.sock.destroy();
    await c.closed;
  } finally {
    await short.close();
    await late.stop();
  }
});

test('a target that refuses while another is set meanwhile: the waiting client goes to the new one', async () => {
  const short = new Endpoint({ host: HOST, port: 27007, holdMs: 3_000, connectTimeoutMs: 500 });
  await short.listen();
  try {
    short.setTarget({ name: 'gone', host: HOST, port: 27019 }, 'crashed');
    const c = await dial(27007);
    await sleep(400);
    assert.match(short.setTarget(A.target, 'failover'), /released 1 held connection/);
    assert.equal(await c.greeting, 'a');
    c.sock.destroy();
    await c.closed;
  } finally {
    await short.close();
  }
});

test('a half-close is passed on and the other direction keeps flowing', async () => {
  // This server answers only after the client's FIN, then half-closes itself.
  const counter = net.createServer({ allowHalfOpen: true }, (s) => {
    let n = 0;
    s.on('data', (d: Buffer) => (n += d.length));
    s.on('end', () => s.end(`got ${n}`));
  });
  counter.listen(27004, HOST);
  await once(counter, 'listening');
  ep.setTarget({ name: 'counter', host: HOST, port: 27004 }, 'test');
  try {
    const sock = net.connect({ port: 27000, host: HOST, allowHalfOpen: true });
    await once(sock, 'connect');
    let reply = '';
    sock.on('data', (d) => (reply += d.toString()));
    sock.end(Buffer.alloc(100_000, 1));
    await once(sock, 'end');
    assert.equal(reply, 'got 100000');
    sock.destroy();
  } finally {
    ep.setTarget(A.target, 'restore');
    await new Promise((r) => counter.close(r));
  }
});

test('backpressure: a client that does not read stops the server, and nothing is lost', async () => {
  const total = 128 * 1024 * 1024;
  const chunk = Buffer.alloc(64 * 1024, 7);
  let flushed = 0;
  const firehose = net.createServer((s) => {
    s.on('error', () => undefined);
    const pump = () => {
      while (flushed < total) {
        flushed += chunk.length;
        if (!s.write(chunk)) return void s.once('drain', pump);
      }
      s.end();
    };
    pump();
  });
  firehose.listen(27005, HOST);
  await once(firehose, 'listening');
  ep.setTarget({ name: 'firehose', host: HOST, port: 27005 }, 'test');
  try {
    const sock = net.connect(27000, HOST);
    sock.pause();
    await once(sock, 'connect');
    await sleep(1_000);
    const stalled = flushed;
    assert.ok(stalled < 32 * 1024 * 1024, `the server pushed ${stalled} bytes into a client that reads nothing`);
    let got = 0;
    sock.on('data', (d: Buffer) => (got += d.length));
    sock.resume();
    await once(sock, 'end');
    assert.equal(got, total);
    sock.destroy();
  } finally {
    ep.setTarget(A.target, 'restore');
    await new Promise((r) => firehose.close(r));
  }
});

test('backpressure upstream: a server that does not read stops the client, and nothing is lost', async () => {
  const total = 128 * 1024 * 1024;
  let serverSide: net.Socket | undefined;
  const sink = net.createServer((s) => {
    serverSide = s;
    s.pause();
  });
  sink.listen(27007, HOST);
  await once(sink, 'listening');
  ep.setTarget({ name: 'sink', host: HOST, port: 27007 }, 'test');
  try {
    const sock = net.connect(27000, HOST);
    await once(sock, 'connect');
    const chunk = Buffer.alloc(64 * 1024, 3);
    let flushed = 0;
    const pump = () => {
      while (flushed < total) {
        flushed += chunk.length;
        if (!sock.write(chunk)) return void sock.once('drain', pump);
      }
      sock.end();
    };
    pump();
    await sleep(1_000);
    assert.ok(flushed < 32 * 1024 * 1024, `the client pushed ${flushed} bytes towards a server that reads nothing`);
    assert.ok(serverSide);
    let got = 0;
    serverSide.on('data', (d: Buffer) => (got += d.length));
    serverSide.resume();
    await once(serverSide, 'end');
    assert.equal(got, total);
    sock.destroy();
  } finally {
    ep.setTarget(A.target, 'restore');
    serverSide?.destroy();
    await new Promise((r) => sink.close(r));
  }
});

test('many connections, then a drop of many: no socket, link or listener is left', async () => {
  ep.setTarget(A.target, 'leak test');
  await sleep(100);
  const baseHandles = tcpHandles();
  const baseListeners = ep['server'].listenerCount('connection');
  // 300 connections that each exchange a line and close.
  await Promise.all(
    Array.from({ length: 300 }, async () => {
      const c = await dial(27000);
      assert.equal(await c.greeting, 'a');
      c.sock.end();
      await c.closed;
    }),
  );
  // 200 connections dropped by a target change.
  const open = await Promise.all(Array.from({ length: 200 }, () => dial(27000)));
  await Promise.all(open.map((c) => c.greeting));
  assert.equal(ep.stats.active, 200);
  assert.match(ep.setTarget(B.target, 'drop test'), /dropped 200 connections to a$/);
  await Promise.all(open.map((c) => c.closed));
  for (let i = 0; i < 50 && (A.sockets.size > 0 || tcpHandles() > baseHandles); i++) await sleep(50);
  const s = ep.stats;
  assert.deepEqual([s.active, s.connecting, s.held], [0, 0, 0]);
  assert.equal(ep['links'].size, 0);
  assert.equal(A.sockets.size, 0, 'every server-side socket was closed');
  assert.equal(tcpHandles(), baseHandles, 'TCP handles back to where they were');
  assert.equal(ep['server'].listenerCount('connection'), baseListeners);
  ep.setTarget(A.target, 'restore');
});

test('close() destroys live connections and frees the port; a taken port is a clear error', async () => {
  const e = new Endpoint({ host: HOST, port: 27006 });
  await e.listen();
  e.setTarget(A.target, 'test');
  const c = await dial(27006);
  assert.equal(await c.greeting, 'a');
  await e.close();
  await c.closed;
  const again = new Endpoint({ host: HOST, port: 27006 });
  await again.listen();
  const clash = new Endpoint({ host: HOST, port: 27006 });
  await assert.rejects(clash.listen(), (err: unknown) => err instanceof PgmError && err.code === 'port.in_use' && /127\.0\.0\.1:27006/.test(err.message));
  await again.close();
});
