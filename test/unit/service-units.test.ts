import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { renderUnits, serviceCommand } from '../../src/daemon/service.js';
import { inheritedListenFd, withoutListenEnv } from '../../src/daemon/listen.js';
import { parseSpareFds, spareFdsEnv } from '../../src/daemon/spare.js';

const cfg = {
  cluster: 'shop',
  file: '/etc/pgmaestro/shop.yaml',
  endpoints: { rw: { host: '10.0.0.5', port: 6432 }, ro: { host: '::1', port: 6433 }, auto: null },
} as unknown as Parameters<typeof renderUnits>[0];
const CMD = '/usr/bin/node /opt/pgmaestro/bin/pgmaestro.js';
const units = new Map(renderUnits(cfg, CMD).map((u) => [u.name, u.text]));
const has = (name: string, line: string) => assert.ok(units.get(name)?.split('\n').includes(line), `${name} has ${line}:\n${units.get(name)}`);

test('service units: a target, the nodes, the daemon, a socket and a service per enabled endpoint', () => {
  assert.deepEqual([...units.keys()], [
    'pgmaestro-shop.target',
    'pgmaestro-shop-nodes.service',
    'pgmaestro-shop-daemon.service',
    'pgmaestro-shop-rw.socket',
    'pgmaestro-shop-rw.service',
    'pgmaestro-shop-ro.socket',
    'pgmaestro-shop-ro.service',
  ]);
  has('pgmaestro-shop.target', 'Wants=pgmaestro-shop-nodes.service pgmaestro-shop-daemon.service pgmaestro-shop-rw.socket pgmaestro-shop-rw.service pgmaestro-shop-ro.socket pgmaestro-shop-ro.service');
  has('pgmaestro-shop.target', 'WantedBy=multi-user.target');
});

test('service units: the nodes unit provisions and stops the servers; the daemon restarts without taking them down', () => {
  has('pgmaestro-shop-nodes.service', `ExecStart=${CMD} up --service -c /etc/pgmaestro/shop.yaml`);
  has('pgmaestro-shop-nodes.service', `ExecStop=${CMD} down --service -c /etc/pgmaestro/shop.yaml`);
  has('pgmaestro-shop-nodes.service', 'Type=oneshot');
  has('pgmaestro-shop-nodes.service', 'RemainAfterExit=yes');
  has('pgmaestro-shop-daemon.service', `ExecStart=${CMD} daemon -c /etc/pgmaestro/shop.yaml`);
  has('pgmaestro-shop-daemon.service', 'Restart=always');
  has('pgmaestro-shop-daemon.service', 'KillMode=process');
  has('pgmaestro-shop-daemon.service', 'Environment=PGMAESTRO_SERVICE=systemd');
  has('pgmaestro-shop-daemon.service', 'After=pgmaestro-shop-nodes.service');
});

test('service units: systemd holds each endpoint socket and hands it to the endpoint, restarted at once', () => {
  has('pgmaestro-shop-rw.socket', 'ListenStream=10.0.0.5:6432');
  has('pgmaestro-shop-ro.socket', 'ListenStream=[::1]:6433');
  has('pgmaestro-shop-rw.socket', 'Service=pgmaestro-shop-rw.service');
  has('pgmaestro-shop-rw.socket', 'NoDelay=true');
  has('pgmaestro-shop-rw.service', `ExecStart=${CMD} endpoint rw -c /etc/pgmaestro/shop.yaml`);
  has('pgmaestro-shop-rw.service', 'Requires=pgmaestro-shop-rw.socket');
  has('pgmaestro-shop-rw.service', 'Restart=always');
  has('pgmaestro-shop-rw.service', 'RestartSec=100ms');
});

test('service units: paths with spaces are quoted for systemd', () => {
  const u = renderUnits({ ...cfg, file: '/srv/my clusters/shop.yaml' }, CMD);
  assert.ok(u[2].text.includes(`ExecStart=${CMD} daemon -c "/srv/my clusters/shop.yaml"`));
  assert.match(serviceCommand(), /^\S*node\S* \S+bin\/pgmaestro\.js$/);
});

test('service units: systemd-analyze verify accepts them', { skip: spawnSync('systemd-analyze', ['--version']).status !== 0 && 'no systemd-analyze' }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-units-'));
  try {
    const real = renderUnits(cfg, serviceCommand());
    for (const u of real) fs.writeFileSync(path.join(dir, u.name), u.text);
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', ...real.map((u) => path.join(dir, u.name))], { encoding: 'utf8' });
    const ours = (r.stderr + r.stdout).split('\n').filter((l) => l.includes('pgmaestro-shop'));
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(ours, [], 'no warning about our units');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('listening socket: from the keeper, from systemd socket activation (for this pid only), else none', () => {
  assert.equal(inheritedListenFd({ PGMAESTRO_LISTEN_FD: '3 127.0.0.1:6432' }, 100), 3);
  assert.equal(inheritedListenFd({ LISTEN_FDS: '1', LISTEN_PID: '100' }, 100), 3);
  assert.equal(inheritedListenFd({ LISTEN_FDS: '1', LISTEN_PID: '99' }, 100), null, 'meant for another process');
  assert.equal(inheritedListenFd({ LISTEN_FDS: '1' }, 100), 3);
  assert.equal(inheritedListenFd({ LISTEN_FDS: '0', LISTEN_PID: '100' }, 100), null);
  assert.equal(inheritedListenFd({}, 100), null);
  assert.equal(inheritedListenFd({ PGMAESTRO_LISTEN_FD: 'x' }, 100), null);
  assert.deepEqual(withoutListenEnv({ PATH: '/bin', PGMAESTRO_LISTEN_FD: '3', LISTEN_FDS: '1', LISTEN_PID: '5', LISTEN_FDNAMES: 'a' }), { PATH: '/bin' });
});

test('spare: the descriptors it is given round-trip through its environment', () => {
  const text = spareFdsEnv([
    { kind: 'rw', fd: 3, host: '127.0.0.1', port: 6432 },
    { kind: 'auto', fd: 4, host: '::1', port: 6434 },
  ]);
  assert.equal(text, 'rw=3@127.0.0.1:6432 auto=4@::1:6434');
  assert.deepEqual([...parseSpareFds(text)], [
    ['rw', { fd: 3, address: '127.0.0.1:6432' }],
    ['auto', { fd: 4, address: '::1:6434' }],
  ]);
  assert.deepEqual([...parseSpareFds(undefined)], []);
  assert.deepEqual([...parseSpareFds('bogus=3@x:1 rw=oops')], []);
});
