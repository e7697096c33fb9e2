import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = path.join(REPO, 'src', 'cli', 'main.ts');
export const PG15_BIN = '/usr/lib/postgresql/15/bin';

/**
 * Ports, below the ephemeral range (32768+) so no client connection can hold
 * them. A cluster's endpoint listens on its first port + 1000.
 *   23400-23699 protocol and combine tests      24100-24499 HA tests (endpoints 25100-25499)
 *   26100-26899 cluster, bad input, WAL, backup tests (endpoints 27100-27899)
 *   27000-27099 endpoint and VIP tests
 *   13000-13499 disaster-recovery tests: clusters (endpoints 14000-14499, console 15000-15499)
 *   13500-13999 their S3 servers (s3rver) and benchmarks' servers
 */
