import { test } from 'node:test';
import assert from 'node:assert/strict';
import { admits, inCidr } from '../../src/router/hba.js';
import { restartDelayMs } from '../../src/daemon/supervise.js';

const cfg = {
  clients: ['10.1.0.0/16', '2001:db8::/32', '192.168.5.7'],
  nodes: [{ admin: '127.0.0.1' }, { admin: '10.9.0.2' }],
  managerAddresses: ['::1'],
} as unknown as Parameters<typeof admits>[0];

test('cidr: IPv4 prefixes, a bare address, /0 and /32', () => {
  assert.equal(inCidr('10.1.200.3', '10.1.0.0/16'), true);
  assert.equal(inCidr('10.2.0.1', '10.1.0.0/16'), false);
  assert.equal(inCidr('192.168.5.7', '192.168.5.7'), true);
  assert.equal(inCidr('192.168.5.8', '192.168.5.7'), false);
  assert.equal(inCidr('8.8.8.8', '0.0.0.0/0'), true);
  assert.equal(inCidr('10.0.0.1', '10.0.0.1/32'), true);
  assert.equal(inCidr('10.0.0.2', '10.0.0.1/32'), false);
  assert.equal(inCidr('10.0.0.129', '10.0.0.128/25'), true);
  assert.equal(inCidr('10.0.0.127', '10.0.0.128/25'), false);
});

test('cidr: IPv6, compressed forms, and IPv4 clients seen as IPv4-mapped IPv6', () => {
  assert.equal(inCidr('2001:db8:1::5', '2001:db8::/32'), true);
  assert.equal(inCidr('2001:db9::1', '2001:db8::/32'), false);
  assert.equal(inCidr('::1', '::1/128'), true);
  assert.equal(inCidr('::1', '::/0'), true);
  assert.equal(inCidr('fe80::1', 'fe80::/10'), true);
  assert.equal(inCidr('::ffff:10.1.2.3', '10.1.0.0/16'), true, 'a dual-stack listener reports IPv4 clients this way');
  assert.equal(inCidr('10.1.2.3', '::ffff:10.1.0.0'), false, 'a mapped CIDR is normalized too, to one exact address');
});

test('cidr: families never match each other; garbage matches nothing', () => {
  assert.equal(inCidr('10.0.0.1', '::/0'), false);
  assert.equal(inCidr('::1', '0.0.0.0/0'), false);
  assert.equal(inCidr('not-an-address', '0.0.0.0/0'), false);
  assert.equal(inCidr('10.0.0.1', 'garbage/8'), false);
  assert.equal(inCidr('', '0.0.0.0/0'), false);
});

test('hba: clients from the configured networks; the superuser only from an address pgmaestro administers from', () => {
  assert.equal(admits(cfg, '10.1.3.4', 'app', false), true);
  assert.equal(admits(cfg, '::ffff:10.1.3.4', 'app', false), true);
  assert.equal(admits(cfg, '2001:db8::9', 'app', false), true);
  assert.equal(admits(cfg, '192.168.5.7', 'app', false), true);
  assert.equal(admits(cfg, '172.16.0.1', 'app', false), false);
  assert.equal(admits(cfg, '10.1.3.4', 'postgres', true), false, 'the superuser not from the client networks');
  for (const admin of ['127.0.0.1', '::ffff:127.0.0.1', '10.9.0.2', '::1']) {
    assert.equal(admits(cfg, admin, 'postgres', true), true, admin);
    assert.equal(admits(cfg, admin, 'app', false), true, admin);
  }
});

test('supervisor backoff: the first restart at once, then 0.5 s doubling, at most 30 s', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map(restartDelayMs), [0, 0, 500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
});
