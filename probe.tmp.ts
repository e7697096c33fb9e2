import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { ReplicationConnection } from './src/protocol/connection.js';
import { baseBackup } from './src/protocol/basebackup.js';
import { formatLsn } from './src/postgres/lsn.js';
const bin = process.argv[2]; const port = Number(process.argv[3]);
const dir = `/tmp/pgm-probe/d${port}`;
const run = (p: string, a: string[]) => execFileSync('runuser', ['-u', 'postgres', '--', `${bin}/${p}`, ...a], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
run('initdb', ['-D', dir, '--auth=trust', '-U', 'postgres']);
fs.appendFileSync(`${dir}/postgresql.conf`, `port=${port}\nlisten_addresses='127.0.0.1'\nunix_socket_directories=''\nwal_sender_timeout=4s\n`);
run('pg_ctl', ['-w', '-D', dir, '-l', `${dir}.log`, 'start']);
try {
  fs.mkdirSync(`${dir}_ts`); execFileSync('chown', ['postgres', `${dir}_ts`]);
  const q = await ReplicationConnection.connect({ host: '127.0.0.1', port, user: 'postgres', password: '', database: 'postgres', replication: false });
  await q.query(`CREATE TABLESPACE ts LOCATION '${dir}_ts'; `);
  await q.query(`CREATE TABLE big TABLESPACE ts AS SELECT g, repeat('x', 500) FROM generate_series(1, 100000) g`);
  await q.close();
  const notices: unknown[] = [];
  const c = await ReplicationConnection.connect({ host: '127.0.0.1', port, user: 'postgres', password: '', replication: 'true', onNotice: (f) => notices.push(f) });
  console.log('params', Object.fromEntries(c.parameters));
  console.log('SHOW', JSON.stringify(await c.query('SHOW wal_segment_size')));
  const events: string[] = [];
  let n = 0;
  const r = await baseBackup(c, { label: 'probe', maxRateKbps: 40000 }, {
    archive: async (name, p) => { events.push(`archive ${name} '${p}' at ${n}`); n = 0; return { write: async (b) => void (n += b.length), end: async () => {} }; },
    manifest: async () => { events.push(`manifest at ${n}`); n = 0; return { write: async (b) => void (n += b.length), end: async () => {} }; },
    progress: (done, total) => events.push(`p ${done} / ${total}kB (archive bytes so far ${n})`),
  });
  events.push(`end ${n}`);
  console.log(events.filter((e, i) => !e.startsWith('p') || i % 50 === 0 || !events[i + 1]?.startsWith('p')).join('\n'));
  console.log('result', formatLsn(r.startLsn), formatLsn(r.endLsn), r.endTimeline, 'notices', JSON.stringify(notices));
  // keepalive cadence and replyRequested
  const id = await c.identifySystem();
  const s = await c.startReplication({ lsn: id.xlogpos });
  const t0 = Date.now();
  for await (const m of s) {
    console.log(Date.now() - t0, m.kind, m.kind === 'keepalive' ? [formatLsn(m.end), m.replyRequested] : [formatLsn(m.start), m.data.length]);
    if (m.kind === 'keepalive' && m.replyRequested) await s.sendStandbyStatus(m.end, m.end, 0n);
    if (Date.now() - t0 > 6000) break;
  }
  console.log('stop ->', await s.stop(), 'then', (await c.query('IDENTIFY_SYSTEM'))[0].command);
  await c.close();
} finally {
  run('pg_ctl', ['-D', dir, '-m', 'immediate', 'stop']);
}
