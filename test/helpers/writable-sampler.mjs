// Samples one node's writability every 100 ms over one persistent session,
// from inside the node's own host (network namespace), so a cut link does
// not blind it and a frozen postmaster (whose open sessions still commit)
// is not mistaken for a stopped one. Prints "<sent ms> <received ms> <1|0>"
// per sample: 1 when the node answered that it is not in recovery.
// Usage: node writable-sampler.mjs HOST PORT (password from PGPASSFILE).
import pg from 'pg';

const [host, port] = process.argv.slice(2);
let client = null;

async function connect() {
  const c = new pg.Client({ host, port: Number(port), user: 'postgres', database: 'postgres', connectionTimeoutMillis: 300, query_timeout: 300, application_name: 'pgmaestro_test_sampler' });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

for (;;) {
  const sent = Date.now();
  let w = 0;
  try {
    client ??= await connect();
    const r = await client.query('SELECT NOT pg_is_in_recovery() AS w');
    w = r.rows[0].w ? 1 : 0;
  } catch {
    client?.end().catch(() => undefined);
    client = null;
  }
  process.stdout.write(`${sent} ${Date.now()} ${w}\n`);
  await new Promise((r) => setTimeout(r, Math.max(0, 100 - (Date.now() - sent))));
}
