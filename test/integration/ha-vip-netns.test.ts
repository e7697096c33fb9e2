import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { NetLab, destroyStaleLabs } from '../../src/ha/netns.js';
import { addVip, findArping, removeVip, vipHolders } from '../../src/ha/vip.js';
import { PgmError } from '../../src/errors.js';
import { run } from '../../src/postgres/exec.js';
import { labSkipReason, replyServer } from '../helpers/netns.js';
import { REPO } from '../helpers/paths.js';

/**
 * The VIP moved between two lab hosts (network namespaces on a bridge): never
 * on two hosts at once, and reachable from the root namespace on its new
 * host right after the move. Ports 27050-27059, lab addresses only.
 */

const skip = (await labSkipReason()) ?? (await findArping().then(() => null, (err: PgmError) => err.render()));

let lab: NetLab;
let vip: string;
let vipIp: string;
const children: ChildProcess[] = [];

/** Connects from the root namespace and returns what the server says. */
function ask(host: string, port: number, timeoutMs = 3_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, timeout: timeoutMs });
    let got = '';
    s.on('data', (d) => (got += d.toString()));
    s.on('end', () => resolve(got));
    s.on('timeout', () => s.destroy(new Error(`no answer from ${host}:${port} within ${timeoutMs} ms`)));
    s.on('error', reject);
  });
}

/** Gone, or a zombie waiting for its new parent to reap it. */
function dead(pid: number): boolean {
  try {
    return /^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

async function mac(host: string): Promise<string> {
  const r = await lab.exec(host, 'ip', ['-j', 'link', 'show', 'eth0']);
  return (JSON.parse(r.stdout) as { address: string }[])[0].address;
}

async function neighbourMac(ip: string): Promise<string | undefined> {
  const r = await run('ip', ['-j', 'neigh', 'show', 'to', ip, 'dev', lab.bridge]);
  return (JSON.parse(r.stdout || '[]') as { lladdr?: string }[])[0]?.lladdr;
}

before(async () => {
  if (skip) return;
  lab = await NetLab.create(`vip${process.pid % 100000}`, ['a', 'b']);
  vipIp = `10.213.${lab.index}.100`;
  vip = `${vipIp}/24`;
  children.push(await replyServer(lab, 'a', '0.0.0.0', 27050, 'a'));
  children.push(await replyServer(lab, 'b', '0.0.0.0', 27050, 'b'));
});

after(async () => {
  for (const c of children) c.kill('SIGKILL');
  await lab?.destroy();
});

test('the VIP moves from host a to host b: on one host at any time, reachable on b right after', { skip: skip ?? false }, async () => {
  const hosts = lab.hosts.map((h) => ({ name: h.name, netns: h.netns }));
  const on = (name: string) => ({ address: vip, iface: 'eth0', netns: lab.host(name).netns });

  assert.match(await addVip(on('a')), /^added VIP 10\.213\.\d+\.100\/24 to eth0 in network namespace pgm-vip\d+-a; announced it with gratuitous ARP$/);
  assert.match(await addVip(on('a')), /was already on eth0/, 'adding twice is fine');
  assert.deepEqual(await vipHolders({ address: vip, hosts }), ['a']);
  assert.equal(await ask(vipIp, 27050), 'a');
  assert.equal(await neighbourMac(vipIp), await mac('a'));
  // The kernel ignores an ARP update for an entry younger than locktime (1 s).
  await new Promise((r) => setTimeout(r, 1_100));

  // Watch the holders while the VIP moves.
  const seen: string[][] = [];
  let watching = true;
  const watcher = (async () => {
    while (watching) seen.push(await vipHolders({ address: vip, hosts }));
  })();
  await new Promise((r) => setTimeout(r, 200));
  const t0 = Date.now();
  assert.match(await removeVip(on('a')), /^removed VIP/);
  assert.match(await addVip(on('b')), /^added VIP/);
  const moved = Date.now() - t0;
  const answer = await ask(vipIp, 27050);
  const reached = Date.now() - t0;
  await new Promise((r) => setTimeout(r, 200));
  watching = false;
  await watcher;

  assert.equal(answer, 'b', 'the root namespace reaches host b through the VIP');
  assert.equal(await neighbourMac(vipIp), await mac('b'), 'the gratuitous ARP re-pointed the neighbour entry at b');
  assert.ok(seen.length >= 5, `only ${seen.length} samples`);
  assert.ok(seen.every((s) => s.length <= 1), `two holders seen: ${JSON.stringify(seen.filter((s) => s.length > 1))}`);
  assert.deepEqual(seen.at(-1), ['b']);
  console.log(`VIP move: remove+add ${moved} ms, first answer through the VIP ${reached} ms after the move began; ${seen.length} holder samples, never two`);

  // A server bound on the VIP itself in b answers too.
  children.push(await replyServer(lab, 'b', vipIp, 27051, 'b on the VIP'));
  assert.equal(await ask(vipIp, 27051), 'b on the VIP');

  // And back.
  await removeVip(on('b'));
  assert.deepEqual(await vipHolders({ address: vip, hosts }), []);
  assert.match(await removeVip(on('b')), /was not on eth0 .*; nothing to remove$/, 'removing twice is fine');
  await addVip(on('a'));
  assert.deepEqual(await vipHolders({ address: vip, hosts }), ['a']);
  assert.equal(await ask(vipIp, 27050), 'a');
});

test('a VIP on a missing interface is a clear error and changes nothing', { skip: skip ?? false }, async () => {
  const netns = lab.host('b').netns;
  await assert.rejects(addVip({ address: `10.213.${lab.index}.101/24`, iface: 'eth9', netns }), (err: unknown) => {
    return err instanceof PgmError && err.code === 'daemon.failed' && /eth9 in network namespace/.test(err.message) && /eth9 exists/.test(err.hint ?? '');
  });
  assert.deepEqual(await vipHolders({ address: `10.213.${lab.index}.101`, hosts: lab.hosts }), []);
});

test('a lab left behind by a crashed run is removed, with what ran in it', { skip: skip ?? false }, async () => {
  const name = `crash${process.pid % 10000}`;
  const code = [
    `import { NetLab } from ${JSON.stringify(path.join(REPO, 'src/ha/netns.ts'))};`,
    `const lab = await NetLab.create(${JSON.stringify(name)}, ['a']);`,
    "lab.spawn('a', 'sleep', ['600'], { stdio: 'ignore' }).unref();",
    "console.log(lab.bridge);",
    'setInterval(() => {}, 1000);',
  ].join('\n');
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] });
  const bridge = await new Promise<string>((resolve, reject) => {
    child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim()));
    child.once('exit', (c) => reject(new Error(`lab child exited with ${c}`)));
  });
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  const pids = (await run('ip', ['netns', 'pids', `pgm-${name}-a`])).stdout.trim();
  assert.notEqual(pids, '', 'something runs in the crashed lab');

  assert.ok((await destroyStaleLabs()).includes(name));
  assert.ok(!(await run('ip', ['netns', 'list'])).stdout.includes(`pgm-${name}-a`));
  assert.notEqual((await run('ip', ['link', 'show', bridge])).code, 0, `${bridge} is gone`);
  for (const pid of pids.split('\n')) {
    for (let i = 0; i < 50 && !dead(Number(pid)); i++) await new Promise((r) => setTimeout(r, 100)); // SIGKILL lands asynchronously
    assert.ok(dead(Number(pid)), `the process ${pid} in the lab was killed`);
  }
  assert.ok(!(await destroyStaleLabs()).includes(name), 'a second cleanup finds nothing');
  // The live lab of this file was left alone.
  assert.deepEqual(await vipHolders({ address: vip, hosts: lab.hosts }), ['a']);
});
