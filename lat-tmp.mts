import pg from 'pg';
import fs from 'node:fs';
const password = fs.readFileSync('/tmp/pgm-trlab/c/secrets/superuser.password', 'utf8').trim();
for (const port of [10400, 11402]) {
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres' });
  await c.connect();
  const ins: number[] = [], sel: number[] = [];
  for (let i = 0; i < 300; i++) {
    let t = performance.now();
    const r = await c.query({ name: 'i', text: 'INSERT INTO ryw DEFAULT VALUES RETURNING id' });
    ins.push(performance.now() - t);
    t = performance.now();
    await c.query({ name: 's', text: 'SELECT 1 / count(*) FROM ryw WHERE id = $1', values: [r.rows[0].id] });
    sel.push(performance.now() - t);
  }
  const q = (a: number[], p: number) => a.sort((x, y) => x - y)[Math.floor(a.length * p)].toFixed(2);
  console.log(port, 'insert p50', q(ins, 0.5), 'p90', q(ins, 0.9), '| select p50', q(sel, 0.5), 'p90', q(sel, 0.9), 'max', q(sel, 0.999));
  await c.end();
}
