import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Classification } from '../../src/router/classify.js';
import { routeUnit, type RouteInput } from '../../src/router/route.js';

const READ: Classification = { write: false, reason: 'SELECT', pin: null, tx: null, functions: [], route: null, hint: null };
const WRITE: Classification = { ...READ, write: true, reason: 'Insert' };

function input(change: Partial<RouteInput> = {}): RouteInput {
  const replay: Record<string, bigint> = { node2: 100n, node3: 200n };
  return {
    cls: READ,
    volatile: false,
    setting: 'auto',
    inDeferredBegin: false,
    replicas: ['node2', 'node3'],
    replayLsn: (n) => replay[n] ?? null,
    lastCommit: null,
    connections: () => 0,
    turn: 0,
    ...change,
  };
}

test('route: a read goes to a replica, a write to the primary', () => {
  assert.deepEqual(routeUnit(input()), { target: 'replica', node: 'node2', reason: 'SELECT' });
  assert.deepEqual(routeUnit(input({ turn: 1 })), { target: 'replica', node: 'node3', reason: 'SELECT' });
  assert.deepEqual(routeUnit(input({ cls: WRITE })), { target: 'primary', reason: 'Insert' });
});

test('route: a read calling a volatile (or unknown) function goes to the primary', () => {
  assert.deepEqual(routeUnit(input({ volatile: true })), { target: 'primary', reason: 'SELECT calling a volatile function' });
});

test('route: no eligible replica, the primary says why', () => {
  assert.deepEqual(routeUnit(input({ replicas: [] })), { target: 'primary', reason: 'SELECT, but no replica is eligible' });
});

test('route: read-your-writes — only a replica past the session\'s last commit, else the primary', () => {
  assert.deepEqual(routeUnit(input({ lastCommit: 150n })), { target: 'replica', node: 'node3', reason: 'SELECT' });
  assert.deepEqual(routeUnit(input({ lastCommit: 200n, turn: 0 })), { target: 'replica', node: 'node3', reason: 'SELECT' });
  assert.deepEqual(routeUnit(input({ lastCommit: 201n })), { target: 'primary', reason: "SELECT, but no eligible replica has replayed the session's last commit yet" });
  assert.deepEqual(routeUnit(input({ lastCommit: 50n, turn: 1 })), { target: 'replica', node: 'node3', reason: 'SELECT' });
});

test('route: explicit transactions — read-write to the primary, READ ONLY to a replica (with read-your-writes)', () => {
  assert.deepEqual(routeUnit(input({ cls: { ...READ, write: true, tx: 'begin', reason: 'BEGIN' } })), { target: 'primary', reason: 'a read-write transaction' });
  assert.deepEqual(routeUnit(input({ cls: { ...READ, write: true, tx: 'begin_read_write', reason: 'BEGIN' } })), { target: 'primary', reason: 'a read-write transaction' });
  assert.deepEqual(routeUnit(input({ cls: { ...READ, tx: 'begin_read_only', reason: 'BEGIN READ ONLY' } })), { target: 'replica', node: 'node2', reason: 'BEGIN READ ONLY' });
  assert.deepEqual(routeUnit(input({ cls: { ...READ, tx: 'begin_read_only' }, lastCommit: 999n })), { target: 'primary', reason: "BEGIN READ ONLY, but no eligible replica has replayed the session's last commit yet" });
});

test('route: inside a plain BEGIN the router deferred, only SET TRANSACTION READ ONLY goes to a replica', () => {
  assert.deepEqual(routeUnit(input({ inDeferredBegin: true, cls: { ...READ, tx: 'set_read_only', reason: 'SET TRANSACTION' } })), { target: 'replica', node: 'node2', reason: 'a READ ONLY transaction' });
  assert.deepEqual(routeUnit(input({ inDeferredBegin: true })), { target: 'primary', reason: 'a read-write transaction' }, 'a SELECT in a plain transaction may be followed by a write');
  assert.deepEqual(routeUnit(input({ inDeferredBegin: true, cls: WRITE })), { target: 'primary', reason: 'a read-write transaction' });
  assert.deepEqual(routeUnit(input({ inDeferredBegin: true, cls: { ...READ, tx: 'set_read_only' }, volatile: true })), { target: 'primary', reason: 'a READ ONLY transaction calling a volatile function' });
});

test('route: hints override everything, even a write or a pin', () => {
  assert.deepEqual(routeUnit(input({ cls: { ...READ, hint: 'primary' } })), { target: 'primary', reason: 'hint /* pgmaestro:primary */' });
  assert.deepEqual(routeUnit(input({ cls: { ...WRITE, hint: 'replica' } })), { target: 'replica', node: 'node2', reason: 'hint /* pgmaestro:replica */' });
  assert.deepEqual(routeUnit(input({ cls: { ...READ, hint: 'replica' }, lastCommit: 999n })), { target: 'replica', node: 'node2', reason: 'hint /* pgmaestro:replica */' }, 'the replica hint ignores read-your-writes');
  assert.deepEqual(routeUnit(input({ cls: { ...READ, hint: 'replica' }, replicas: [] })), { target: 'primary', reason: 'hint /* pgmaestro:replica */, but no replica is eligible' });
  assert.deepEqual(routeUnit(input({ cls: { ...READ, hint: 'primary' }, setting: 'replica' })), { target: 'primary', reason: 'hint /* pgmaestro:primary */' });
});

test('route: session state goes to the primary', () => {
  assert.deepEqual(routeUnit(input({ cls: { ...WRITE, pin: 'LISTEN' } })), { target: 'primary', reason: 'session state: LISTEN' });
  assert.deepEqual(routeUnit(input({ cls: { ...WRITE, pin: 'SET search_path' }, setting: 'replica' })), { target: 'primary', reason: 'session state: SET search_path' });
});

test('route: SET pgmaestro.route = primary | replica applies to every unit; auto is the default', () => {
  assert.deepEqual(routeUnit(input({ setting: 'primary' })), { target: 'primary', reason: 'SET pgmaestro.route = primary' });
  assert.deepEqual(routeUnit(input({ setting: 'replica', cls: WRITE })), { target: 'replica', node: 'node2', reason: 'SET pgmaestro.route = replica' });
  assert.deepEqual(routeUnit(input({ setting: 'replica', replicas: [] })), { target: 'primary', reason: 'SET pgmaestro.route = replica, but no replica is eligible' });
});

test('route: least connections among the caught-up replicas', () => {
  const load: Record<string, number> = { node2: 3, node3: 1 };
  assert.deepEqual(routeUnit(input({ connections: (n) => load[n] })), { target: 'replica', node: 'node3', reason: 'SELECT' });
});
