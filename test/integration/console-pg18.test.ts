import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { launchBrowser } from '../helpers/browser.js';
import { TestCluster } from '../helpers/cluster.js';
import { setHa } from '../helpers/ha.js';
import { parseMetrics, sample, type Family } from '../helpers/prometheus.js';

/**
 * The web console and /metrics of a real three-node cluster (PostgreSQL 18),
 * looked at through Debian's headless Chromium. Ports 16000-16009, endpoint
 * 17000, console 18000.
 */
const PORT = 16000;
const CONSOLE = `http://127.0.0.1:${PORT + 2000}`;
let c: TestCluster;
let browser: Awaited<ReturnType<typeof launchBrowser>> | null = null;
let viewer: Page; // read-only, opened once and never reloaded
let operator: Page;

const readToken = () => fs.readFileSync(path.join(c.dir, 'secrets', 'console.token'), 'utf8').trim();
const operatorToken = () => fs.readFileSync(path.join(c.dir, 'secrets', 'console-operator.token'), 'utf8').trim();
const get = (p: string, token?: string) => fetch(`${CONSOLE}${p}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

async function login(token: string): Promise<Page> {
  const page = await (await browser!.newContext()).newPage();
  const first = await page.goto(`${CONSOLE}/`);
  assert.equal(first?.status(), 401, 'the page asks for a token first');
  await page.fill('#token', token);
  await Promise.all([page.waitForURL(`${CONSOLE}/`), page.click('#login')]);
  await page.waitForSelector('#nodes tr[data-node]');
  return page;
}

const roles = (page: Page) => page.$$eval('#nodes tr[data-node]', (rows) => rows.map((r) => `${(r as HTMLElement).dataset.node}=${(r as HTMLElement).dataset.role}`));

before(async () => {
  c = await TestCluster.init('console', { portBase: PORT });
  setHa(c, ['restart_first: false', 'failover_timeout: 3s']);
  const r = await c.run('up');
  assert.equal(r.code, 0, r.stderr);
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await c?.destroy();
});

test('without a token the page, the stream and /metrics answer 401; status names the console', async () => {
  for (const p of ['/', '/api/stream', '/api/view', '/metrics']) assert.equal((await get(p)).status, 401, p);
  assert.equal((await get('/metrics', 'wrong-token-wrong-token')).status, 401);
  const st = (await c.status()) as unknown as { endpoints: { console?: string } };
  assert.equal(st.endpoints.console, `127.0.0.1:${PORT + 2000}`);
  const human = await c.run('status');
  assert.match(human.stdout, new RegExp(`console and /metrics: http://127\\.0\\.0\\.1:${PORT + 2000}/ \\(token in .*/secrets/console\\.token`));
  assert.equal(fs.statSync(path.join(c.dir, 'secrets', 'console.token')).mode & 0o777, 0o600);
});

test('the page shows the three nodes with their roles, read-only', async () => {
  viewer = await login(readToken());
  await viewer.waitForFunction(() => document.querySelectorAll('#nodes tr[data-role="replica"]').length === 2);
  assert.deepEqual(await roles(viewer), ['node1=primary', 'node2=replica', 'node3=replica']);
  assert.equal(await viewer.textContent('#primary'), 'node1');
  assert.equal(await viewer.textContent('#access'), 'read-only');
  assert.equal(await viewer.locator('button[data-action]:visible').count(), 0, 'no operator action for a read-only session');
  assert.equal(await viewer.evaluate(() => document.cookie), '', 'the session cookie is out of the page\'s reach');
  await viewer.evaluate(() => ((window as unknown as { pgmMarker: number }).pgmMarker = 42)); // gone if the page ever reloads
});

test('a full backup from the console (operator, confirmed) and an incremental: the timeline shows | then * inside the window, without a reload', async () => {
  operator = await login(operatorToken());
  assert.equal(await operator.textContent('#access'), 'operator');
  await operator.click('button[data-action="backup"][data-type="full"]');
  await operator.click('#confirm-go'); // nothing typed: refused by the page itself
  assert.equal(await operator.textContent('#confirm-result'), 'Type full to confirm.');
  await operator.fill('#confirm-input', 'full');
  await operator.click('#confirm-go');
  await operator.waitForFunction(() => /backup started/.test(document.querySelector('#confirm-result')?.textContent ?? ''));
  await c.until('the full backup in the event log', async () => /full backup \S+F from node\d \(requested by the console \(operator session from 127\.0\.0\.1\)\)/.test((await c.run('events')).stdout), 60_000);
  const incr = await c.run('backup', 'incr');
  assert.equal(incr.code, 0, incr.stderr);

  await viewer.waitForFunction(() => document.querySelectorAll('#timeline [data-mark]').length === 2, undefined, { timeout: 15_000 });
  const marks = await viewer.$$eval('#timeline [data-mark]', (els) => els.map((e) => ({ type: (e as SVGElement).dataset.type!, x: Number((e as SVGElement).dataset.x) })));
  const windowStart = Number(await viewer.getAttribute('#timeline [data-window-start]', 'data-window-start'));
  assert.deepEqual(marks.map((m) => m.type), ['full', 'incr']);
  assert.ok(windowStart <= marks[0].x && marks[0].x < marks[1].x && marks[1].x <= 1, JSON.stringify({ windowStart, marks }));
  assert.match((await viewer.textContent('#timeline-text'))!, /\|[-~]*\*[-~]*>NOW$/, 'the text form draws | then *');
  assert.match((await viewer.textContent('#timeline-sentence'))!, /^1 full, 1 incremental; restorable from /);
  assert.equal(await viewer.locator('#backup-list tr[data-backup]').count(), 2);
  assert.match((await viewer.textContent('#storage'))!, /used \(backups .* projected: /);
  assert.equal(await viewer.evaluate(() => (window as unknown as { pgmMarker?: number }).pgmMarker), 42, 'no reload');
});

interface StatusForMetrics {
  cluster: string;
  postgres_version: string;
  primary: string;
  archive: { lag_bytes: number | null } | null;
  nodes: { name: string; role: string; reachable: boolean; timeline: number | null; lsn: string | null; lag_bytes: number | null; lag_seconds: number | null }[];
  slots: { name: string; retained_bytes: number | null }[];
}

const lsnBytes = (l: string) => {
  const [hi, lo] = l.split('/').map((h) => parseInt(h, 16));
  return hi * 2 ** 32 + lo;
};

/** What status --json and backup list --json say, in /metrics' terms; undefined where /metrics must have no sample. */
function expected(st: StatusForMetrics, backups: { type: string; size_bytes: number; stored_bytes: number; start_time: string; stop_time: string }[]): Record<string, number | undefined> {
  const out: Record<string, number | undefined> = {};
  for (const n of st.nodes) {
    out[`pgmaestro_node_up{node=${n.name}}`] = n.reachable ? 1 : 0;
    for (const r of ['primary', 'replica', 'down', 'fenced']) out[`pgmaestro_node_role{node=${n.name},role=${r}}`] = n.role === r ? 1 : 0;
    out[`pgmaestro_node_timeline{node=${n.name}}`] = n.timeline ?? undefined;
    out[`pgmaestro_node_wal_lsn_bytes{node=${n.name}}`] = n.lsn ? lsnBytes(n.lsn) : undefined;
    out[`pgmaestro_node_replay_lag_bytes{node=${n.name}}`] = n.lag_bytes ?? undefined;
    out[`pgmaestro_node_replay_lag_seconds{node=${n.name}}`] = n.lag_seconds ?? undefined;
  }
  for (const s of st.slots) out[`pgmaestro_replication_slot_retained_wal_bytes{slot=${s.name}}`] = s.retained_bytes ?? undefined;
  out['pgmaestro_archive_lag_bytes{}'] = st.archive?.lag_bytes ?? undefined;
  out[`pgmaestro_cluster_info{cluster=${st.cluster},primary=${st.primary},postgres_version=${st.postgres_version}}`] = 1;
  for (const t of ['full', 'incr']) {
    const of = backups.filter((b) => b.type === t);
    const last = of[of.length - 1];
    out[`pgmaestro_backups{type=${t}}`] = of.length;
    out[`pgmaestro_backup_last_size_bytes{type=${t}}`] = last?.size_bytes;
    out[`pgmaestro_backup_last_stored_bytes{type=${t}}`] = last?.stored_bytes;
    out[`pgmaestro_backup_last_duration_seconds{type=${t}}`] = last ? (Date.parse(last.stop_time) - Date.parse(last.start_time)) / 1000 : undefined;
  }
  return out;
}

function actual(f: Family[], keys: string[]): Record<string, number | undefined> {
  const out: Record<string, number | undefined> = {};
  for (const k of keys) {
    const [, name, labels] = /^([a-z_]+)\{(.*)\}$/.exec(k)!;
    out[k] = sample(f, name, Object.fromEntries(labels === '' ? [] : labels.split(',').map((kv) => kv.split('=') as [string, string])));
  }
  return out;
}

test('/metrics parses with a Prometheus text-format parser and its values match status --json and backup list --json', async () => {
  const list = JSON.parse((await c.run('backup', 'list', '--json')).stdout) as { backups: Parameters<typeof expected>[1] };
  let want: Record<string, number | undefined> = {};
  let got: Record<string, number | undefined> = {};
  let families: Family[] = [];
  let st: StatusForMetrics | null = null;
  // status and /metrics observe at slightly different moments: on this idle cluster they agree within a few tries
  for (let i = 0; i < 6; i++) {
    st = (await c.status()) as unknown as StatusForMetrics;
    const r = await get('/metrics', readToken());
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    families = parseMetrics(await r.text());
    want = expected(st, list.backups);
    got = actual(families, Object.keys(want));
    if (JSON.stringify(want) === JSON.stringify(got)) break;
    await new Promise((res) => setTimeout(res, 300));
  }
  const view = await (await get('/api/view', readToken())).json() as { archive: unknown; at: string };
  assert.deepEqual(got, want, `status: ${JSON.stringify(st)}; view ${view.at}: ${JSON.stringify(view.archive)}; wal: ${fs.readdirSync(path.join(c.dir, 'backups', 'wal')).join(' ')}`);
  assert.ok(families.find((x) => x.name === 'pgmaestro_monitor_decisions_total')!.metrics.some((m) => m.labels?.kind === 'none' && Number(m.value) > 0));
  assert.equal(sample(families, 'pgmaestro_failovers_total'), 0);
  assert.equal(sample(families, 'pgmaestro_endpoint_connections', { endpoint: 'rw' }), 0);
});

test('nothing the console sends holds a secret: page, view, /metrics', async () => {
  const secrets = ['superuser.password', 'replication.password', 'console.token', 'console-operator.token'].map((f) => fs.readFileSync(path.join(c.dir, 'secrets', f), 'utf8').trim());
  const texts = [await viewer.content(), await operator.content(), await (await get('/api/view', operatorToken())).text(), await (await get('/metrics', operatorToken())).text()];
  for (const t of texts) for (const s of secrets) assert.ok(!t.includes(s), 'a secret left the console');
});

test('SIGKILL of the primary: the open page shows the new primary, the fenced node and the failover sentence without a reload', async () => {
  const st = await c.status();
  process.kill(c.node(st, 'node1').pid!, 'SIGKILL');
  await viewer.waitForFunction(() => /^node[23]$/.test(document.querySelector('#primary')?.textContent ?? ''), undefined, { timeout: 60_000 });
  const primary = (await viewer.textContent('#primary'))!;
  await viewer.waitForFunction((p) => document.querySelector(`#nodes tr[data-node="${p}"]`)?.getAttribute('data-role') === 'primary', primary, { timeout: 15_000 });
  await viewer.waitForFunction(() => document.querySelector('#nodes tr[data-node="node1"]')?.getAttribute('data-role') === 'fenced', undefined, { timeout: 15_000 });
  await viewer.waitForFunction(() => [...document.querySelectorAll('#events li')].some((li) => /promoted node[23]: node1 postmaster down for \d+\.\d s/.test(li.textContent ?? '')), undefined, { timeout: 15_000 });
  const firstEvents = await viewer.$$eval('#events li', (lis) => lis.slice(0, 6).map((li) => li.textContent ?? ''));
  // the monitor's decision ("promoted X: …") or the failover's result ("promoted X (timeline N) in T s: …"): each endpoint process records its own move too
  assert.ok(firstEvents.some((e) => new RegExp(`promoted ${primary}( \\(timeline \\d+\\) in \\d+\\.\\d s)?: node1 postmaster down`).test(e)), `the failover is among the newest events: ${firstEvents.join(' | ')}`);
  assert.match((await viewer.textContent('#problems'))!, /node1 is fenced/);
  assert.equal(await viewer.evaluate(() => (window as unknown as { pgmMarker?: number }).pgmMarker), 42, 'no reload');
  assert.equal(await viewer.getAttribute('#live', 'data-state'), 'live');

  const f = parseMetrics(await (await get('/metrics', readToken())).text());
  assert.equal(sample(f, 'pgmaestro_node_up', { node: 'node1' }), 0);
  assert.equal(sample(f, 'pgmaestro_node_role', { node: 'node1', role: 'fenced' }), 1);
  assert.equal(sample(f, 'pgmaestro_node_role', { node: primary, role: 'primary' }), 1);
  assert.equal(sample(f, 'pgmaestro_failovers_total'), 1);
});

test('a repository that cannot be read: the page says so and keeps showing the rest', async () => {
  const identity = path.join(c.dir, 'backups', 'pgmaestro-repo.json');
  const saved = fs.readFileSync(identity);
  fs.writeFileSync(identity, '{ garbage');
  try {
    await viewer.waitForFunction(() => /the backup repository .* cannot be read/.test(document.querySelector('#backup-error')?.textContent ?? ''), undefined, { timeout: 15_000 });
    assert.equal(await viewer.isVisible('#backup-error'), true);
    const before = await viewer.textContent('#updated');
    await viewer.waitForFunction((b) => document.querySelector('#updated')?.textContent !== b, before, { timeout: 15_000 });
    assert.equal(await viewer.locator('#nodes tr[data-node]').count(), 3, 'the topology is still there');
    const f = parseMetrics(await (await get('/metrics', readToken())).text());
    assert.equal(sample(f, 'pgmaestro_repository_up'), 0);
  } finally {
    fs.writeFileSync(identity, saved);
  }
});
