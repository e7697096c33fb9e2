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
 * them. A cluster's endpoint listens on its first port + 1000.
 *   23400-23699 protocol and combine tests      24100-24499 HA tests (endpoints 25100-25499)
 *   26100-26899 cluster, bad input, WAL, backup tests (endpoints 27100-27899)
 *   27000-27099 endpoint and VIP tests
 *   19000-19499 multi-host test clusters (endpoints 20000-20499, console 21000-21499);
 *   19500-19999 their agents (19510, campaign 19610) and etcd members (19520, campaign 19620; peers +1), inside lab namespaces named mh*
 *   (multi-host clusters: 19000 main test, 19100 fault campaign, 19200 benchmark; 19700-19799 benchmark agents, etcd, Patroni)
 */
