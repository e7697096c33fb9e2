import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { Forwarders } from '../../src/router/forwarders.js';

/**
 * The TCP endpoint on several threads (worker threads sharing one listening
 * socket) against plain TCP servers on loopback: a change of target drops
 * every thread's connections before it resolves, ro's choice spreads over
 * the eligible targets, figures add up, close frees the port. Ports 10520-10529.
 */
const HOST = '127.0.0.1';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function server(name: string, port: number): { srv: net.Server; target: { name: string; host: string; port: number }; sockets: Set<net.Socket> } {
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
    s.write(`${name}\n`);
  });
  srv.listen(port, HOST);
  return { srv, target: { name, host: HOST, port }, sockets };
}

async function dial(port: number): Promise<{ sock: net.Socket; greeting: Promise<string>; closed: Promise<void> }> {
  const sock = net.connect(port, HOST);
  sock.on('error', () => undefined);
  const closed = once(sock, 'close').then(() => undefined);
  const greeting = new Promise<string>((resolve, reject) => {
    sock.once('data', (d) => resolve(d.toString().trim()));
    sock.once('close', () => reject(new Error('closed before a greeting')));
  });
  greeting.catch(() => undefined);
  await once(sock, 'connect');
  return { sock, greeting, closed };
}

const A = server('a', 10521);
const B = server('b', 10522);
before(async () => {
  await Promise.all([once(A.srv, 'listening'), once(B.srv, 'listening')]);
});
after(async () => {
  for (const s of [A, B]) {
    for (const x of s.sockets) x.destroy();
    await new Promise((r) => s.srv.close(r));
  }
});

test('forwarders: two threads; a change of target drops every connection on every thread before it resolves', async () => {
  const lines: string[] = [];
  const f = new Forwarders({ host: HOST, port: 10520, holdMs: 2000, mode: 'target', log: (l) => lines.push(l), threads: 2 });
  await f.listen();
  try {
    assert.equal(f.threads, 2);
    assert.match(await f.setTarget(A.target, 'initial'), /^endpoint 127\.0\.0\.1:10520 now forwards to a \(127\.0\.0\.1:10521\): initial$/);
    const conns = await Promise.all(Array.from({ length: 12 }, () => dial(10520)));
    for (const c of conns) assert.equal(await c.greeting, 'a');
    await sleep(400); // the threads report their figures every 250 ms
    assert.equal(f.stats.active, 12);
    assert.equal(f.connectionsTo('a'), 12);
    const sentence = await f.setTarget(B.target, 'failover');
    assert.equal(sentence, 'endpoint 127.0.0.1:10520 now forwards to b (127.0.0.1:10522): failover; dropped 12 connections to a');
    await Promise.all(conns.map((c) => c.closed));
    // the old target sees its side close a moment later
    for (let i = 0; i < 100 && A.sockets.size > 0; i++) await sleep(20);
    assert.equal(A.sockets.size, 0, 'no connection to the old target is left on any thread');
    const c = await dial(10520);
    assert.equal(await c.greeting, 'b');
    c.sock.destroy();
    assert.match(await f.setTarget(null, 'fencing'), /holds new connections \(up to 2 s\) with no target: fencing/);
    const held = await dial(10520);
    await sleep(300);
    assert.match(await f.setTarget(A.target, 'promoted'), /released 1 held connection$/);
    assert.equal(await held.greeting, 'a');
    held.sock.destroy();
  } finally {
    await f.close();
  }
  // the port is free again
  const probe = net.createServer().listen(10520, HOST);
  await once(probe, 'listening');
  await new Promise((r) => probe.close(r));
});

test('forwarders: ro on two threads spreads new connections over the eligible targets, drops one, refuses with no fallback', async () => {
  const f = new Forwarders({ host: HOST, port: 10523, holdMs: 2000, mode: 'pick', log: () => undefined, threads: 2 });
  const targets = { a: A.target, b: B.target };
  await f.setPick({ eligible: ['a', 'b'], primary: 'p', fallback: 'primary', targets }); // before listening: kept for the threads
  await f.listen();
  try {
    const conns = await Promise.all(Array.from({ length: 20 }, () => dial(10523)));
    const got = await Promise.all(conns.map((c) => c.greeting));
    const na = got.filter((g) => g === 'a').length;
    assert.ok(na >= 7 && na <= 13, `spread over both: ${na} on a, ${20 - na} on b`);
    await sleep(400);
    assert.equal(f.stats.routes.replica, 20);
    assert.equal(await f.dropTarget('a'), na);
    await f.setPick({ eligible: [], primary: null, fallback: 'refuse', targets });
    const refused = await dial(10523);
    await refused.closed;
    await sleep(400);
    assert.equal(f.stats.routes.refused, 1);
    for (const c of conns) c.sock.destroy();
  } finally {
    await f.close();
  }
});

test('forwarders: one thread (or nothing to share) forwards on the main thread, same behaviour', async () => {
  const f = new Forwarders({ host: HOST, port: 10524, holdMs: 2000, mode: 'target', log: () => undefined, threads: 1 });
  await f.listen();
  try {
    assert.equal(f.threads, 1);
    await f.setTarget(A.target, 'initial');
    const c = await dial(10524);
    assert.equal(await c.greeting, 'a');
    assert.equal(f.stats.active, 1);
    assert.match(await f.setTarget(B.target, 'x'), /dropped 1 connection to a$/);
    await c.closed;
  } finally {
    await f.close();
  }
});
