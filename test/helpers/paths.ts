import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveBinaries } from '../../src/postgres/binaries.js';
import { resolveOsUser } from '../../src/postgres/osuser.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = path.join(REPO, 'src', 'cli', 'main.ts');
export const PG15_BIN = '/usr/lib/postgresql/15/bin';

/**
 * The embedded PostgreSQL 18 as the OS user can run it: the package's own
 * bin directory, or (as root in a checkout that user cannot reach) pgmaestro's
 * private copy of it, exactly as the CLI resolves it.
 */
export const PG18_BIN = (await resolveBinaries('embedded', await resolveOsUser('postgres'))).dir;

/**
 * Ports, below the ephemeral range (32768+) so no client connection can hold
 * them. A test cluster whose first node is port P uses P..P+9 for its nodes,
 * P+1000..P+1009 for its endpoints (rw is P+1000) and P+2000..P+2009 for its
 * web console (P+2000), so a cluster's three blocks must all be free:
 *   13000-13499 disaster-recovery tests: clusters (endpoints 14000-14499, consoles 15000-15499)
 *   13500-13999 their S3 servers (s3rver) and the backup/wal-lag benchmarks (13600-13799)
 *   16000-16499 console tests (endpoints 17000-17499, consoles 18000-18499)
 *   16500-16999 other servers of the console tests
 *   2100-2499   logical replication tests: clusters at 2100 (query node 2102) and 2150 (endpoints 3100-3499, consoles 4100-4499);
 *               bench/logical 2400 (endpoints 3400, console 4400)
 *   2500-2999   other servers of the logical tests: the external PostgreSQL 15 at 2500; bench/logical's at 2900
 *   22000-22159 root checkout, CLI manners, concurrency, config change and slot tests (endpoints 23000-23159, consoles 24000-24159)
 *   23400-23699 protocol and combine tests (23640-23649)
 *   23600-23999 benchmarks, never run with the suite (failover 23600/23700, clone 23750,
 *               backup 23800/23900; endpoints 24600-24999, consoles 25600-25999)
 *   26100-26899 cluster, bad input, WAL, backup tests (endpoints 27100-27899, consoles 28100-28899)
 *   27000-27099 endpoint and VIP tests (no cluster)
 *   29000-29499 HA tests (endpoints 30000-30499, consoles 31000-31499)
 *   19000-19499 multi-host test clusters (endpoints 20000-20499, consoles 21000-21499):
 *               19000 main test, 19100 fault campaign, 19200 benchmark (never with the suite)
 *   19500-19999 their agents (19510, campaign 19610, benchmark 19710) and etcd members (19520,
 *               campaign 19620, benchmark 19720; peers +1), benchmark Patroni 19730 and HAProxy 19740,
 *               inside lab namespaces named mh*
 *   10000-10499 traffic tests (endpoints rw/ro/auto 11000-11499, consoles 12000-12499);
 *               10500-10999 their other servers (haproxy, pgbouncer); netns labs "tr*"
 */
