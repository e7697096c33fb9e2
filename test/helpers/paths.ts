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
 *   10000-10499 traffic tests (endpoints 11000-11499, console 12000-12499); 10500-10999 their other servers (haproxy, pgbouncer); netns labs "tr*"
 */
