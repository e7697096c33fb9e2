import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { TestCluster, processAlive, type StatusJson } from './cluster.js';
import { Writer } from './ha.js';
import { PG15_BIN } from './paths.js';

/**
 * Changing the one configuration safely, against one PostgreSQL installation:
 * reloadable settings applied everywhere without a restart, restart-only
 * settings reported and rolled without downtime, replica minimums refused,
 * values PostgreSQL would refuse never written.
 */
export function configChangeSuite(label: string, opts: { portBase: number; binDir?: string; replicas: number }): void {
  let c: TestCluster;
  const ports = Array.from({ length: opts.replicas + 1 }, (_, i) => opts.portBase + i);
  const names = ports.map((_, i) => `node${i + 1}`);

  before(async () => {
    c = await TestCluster.init(label, { portBase: opts.portBase, replicas: opts.replicas, binDir: opts.binDir });
    const r = await c.run('up');
    assert.equal(r.code, 0, r.stderr);
    await c.sql(opts.portBase, 'CREATE TABLE acked (id int)');
    execFileSync(path.join(PG15_BIN, 'pgbench'), ['-i', '-s', '1', '-q', '-h', '127.0.0.1', '-p', String(opts.portBase), '-U', 'postgres', 'postgres'], { env: { ...process.env, PGPASSWORD: c.password() }, stdio: 'ignore' });
  });
  after(async () => {
    await c?.destroy();
  });

  const setShared = (key: string, value: string | null) => {
    let text = fs.readFileSync(c.file, 'utf8').replace(new RegExp(`\\n    ${key}: .*`), '');
    if (value !== null) text = text.replace('  settings:\n', `  settings:\n    ${key}: ${value}\n`);
    fs.writeFileSync(c.file, text);
  };
  const show = async (port: number, name: string) => (await c.sql<Record<string, string>>(port, `SHOW ${name}`))[0][name];
  const confs = (st: StatusJson) => st.nodes.map((n) => ['postgresql.conf', 'pgmaestro.node.conf'].map((f) => fs.readFileSync(path.join(n.data_dir, f), 'utf8')).join('\n'));

  test(`${label}: a reloadable setting is applied on every node and reported as applied, with no restart`, async () => {
    const before = await c.status();
    setShared('work_mem', '77MB');
    const r = await c.run('up');
    assert.equal(r.code, 0, r.stderr);
    // the template gives the last of three nodes its own work_mem, which wins over the shared one
    const own = names.length > 2 ? names[names.length - 1] : null;
    for (const n of names.filter((x) => x !== own)) assert.match(r.stdout, new RegExp(`${n}: configuration changed, reloaded: work_mem = 77MB applied`));
    if (own) assert.match(r.stdout, new RegExp(`${own}: configuration changed, reloaded: no setting in effect on this node changed`));
    for (const [i, p] of ports.entries()) assert.equal(await show(p, 'work_mem'), names[i] === own ? '32MB' : '77MB');
    assert.deepEqual((await c.status()).nodes.map((n) => n.pid), before.nodes.map((n) => n.pid), 'no node restarted');
  });

  test(`${label}: shared_buffers waits for a restart; up and status say so per node`, async () => {
    setShared('shared_buffers', '256MB');
    const r = await c.run('up');
    assert.equal(r.code, 0, r.stderr);
    for (const n of names) assert.match(r.stdout, new RegExp(`${n}: configuration changed, reloaded: shared_buffers = 256MB \\(now 128MB\\) waits for a restart \\(pgmaestro restart --pending\\)`));
    const st = await c.status();
    for (const n of st.nodes) assert.deepEqual((n as unknown as { pending_restart: string[] }).pending_restart, ['shared_buffers']);
    const table = await c.run('status');
    assert.match(table.stdout, /primary \(restart pending: shared_buffers\)/);
  });

  test(`${label}: restart --pending under load through the endpoint: every node gets the new value, only in-flight transactions fail, no failover`, async () => {
    const endpoint = opts.portBase + 1000;
    const writers = [0, 1, 2].map(() => new Writer(endpoint, c.password()).start());
    const bench = spawn(path.join(PG15_BIN, 'pgbench'), ['-n', '-S', '-C', '-c', '2', '-T', '40', '-h', '127.0.0.1', '-p', String(endpoint), '-U', 'postgres', 'postgres'], {
      env: { ...process.env, PGPASSWORD: c.password() },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let benchOut = '';
    bench.stdout.on('data', (d) => (benchOut += d));
    bench.stderr.on('data', (d) => (benchOut += d));
    const benchDone = new Promise((res) => bench.once('close', res));
    await new Promise((r) => setTimeout(r, 1500));
    const r = await c.run('restart', '--pending');
    await new Promise((res) => setTimeout(res, 1500));
    for (const w of writers) await w.stop();
    bench.kill('SIGINT');
    await benchDone;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    console.log(r.stdout.trim().split('\n').map((l) => `# ${l}`).join('\n'));
    const failed = writers.reduce((a, w) => a + w.errors, 0);
    const acked = writers.reduce((a, w) => a + w.acked.length, 0);
    console.log(`# ${label}: restart --pending: ${acked} acknowledged writes, ${failed} failed (in flight at the primary's moment; at most one per writer); pgbench -S -C: ${/number of transactions actually processed: \d+/.exec(benchOut)?.[0] ?? benchOut.trim().split('\n').slice(-3).join(' / ')}`);
    assert.ok(failed <= writers.length, `${failed} failed writes for ${writers.length} writers`);
    assert.ok(acked > 0);
    const st = await c.status();
    for (const n of st.nodes) {
      assert.equal(await show(n.port, 'shared_buffers'), '256MB', `${n.name} runs with the new value`);
      assert.deepEqual((n as unknown as { pending_restart: string[] }).pending_restart, []);
    }
    assert.deepEqual(st.nodes.map((n) => n.role).sort(), ['primary', ...Array(opts.replicas).fill('replica')]);
    const count = Number((await c.sql<{ n: string }>(st.nodes.find((n) => n.role === 'primary')!.port, 'SELECT count(*) AS n FROM acked'))[0].n);
    // every acknowledged write is there; an in-flight one may have committed without its answer reaching the client
    assert.ok(count >= acked && count <= acked + failed, `${count} rows for ${acked} acknowledged and ${failed} failed writes`);
    const events = (await c.run('events', '-n', '200')).stdout;
    assert.doesNotMatch(events, /^\S+\s+promoted /m, 'no failover decision');
    assert.match(events, /restarted .*node/);
  });

  test(`${label}: raising max_connections rolls through; an override lowering it on a replica is refused and changes nothing`, async () => {
    setShared('max_connections', '150');
    const u = await c.run('up');
    assert.equal(u.code, 0, u.stderr);
    const r = await c.run('restart', '--pending');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    for (const p of ports) assert.equal(await show(p, 'max_connections'), '150');

    const st = await c.status();
    const replica = st.nodes.find((n) => n.role === 'replica')!;
    const override = path.join(c.dir, `pgmaestro.${replica.name}.yaml`);
    fs.writeFileSync(override, 'settings:\n  max_connections: 120\n');
    const before = confs(st);
    const refused = await c.run('up');
    fs.rmSync(override);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, new RegExp(`${replica.name} would have max_connections = 120 \\(from ${override.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\), lower than the 150 of node\\d, which can be its primary; a replica with a lower max_connections than its primary stops during recovery\\. HINT:`));
    assert.deepEqual(confs(await c.status()), before);
  });

  test(`${label}: a value PostgreSQL refuses is never written, shared or in one node's override; a node killed afterwards comes back`, async () => {
    const st = await c.status();
    const before = confs(st);
    setShared('work_mem', 'lots');
    const r = await c.run('up');
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`refuses work_mem = "lots" \\(from ${c.file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(postgres\\.settings\\.work_mem\\)\\) for node node1: .*invalid value for parameter "work_mem": "lots".*HINT: fix it in ${c.file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.deepEqual(confs(await c.status()), before);
    setShared('work_mem', '77MB');

    const last = names[names.length - 1];
    const override = path.join(c.dir, `pgmaestro.${last}.yaml`);
    fs.writeFileSync(override, "settings:\n  maintenance_work_mem: 'huge'\n");
    const o = await c.run('reload');
    assert.equal(o.code, 2, o.stderr);
    assert.match(o.stderr, new RegExp(`refuses maintenance_work_mem = "huge" \\(from ${override.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(settings\\.maintenance_work_mem\\)\\) for node ${last}:`));
    assert.deepEqual(confs(await c.status()), before);

    // the primary crashes while the bad override is still there: restart-first brings it back with its unchanged files
    const primary = (await c.status()).nodes.find((n) => n.role === 'primary')!;
    process.kill(primary.pid!, 'SIGKILL');
    await c.until('the primary restarted in place', async () => {
      const now = (await c.status()).nodes.find((n) => n.name === primary.name)!;
      return now.role === 'primary' && now.pid !== null && now.pid !== primary.pid && processAlive(now.pid);
    }, 90_000);
    fs.rmSync(override);
    assert.equal((await c.status()).primary, primary.name);
  });
}
