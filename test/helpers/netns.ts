import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { NetLab, netnsUnsupported } from '../../src/ha/netns.js';
import { run } from '../../src/postgres/exec.js';
import { resolveOsUser } from '../../src/postgres/osuser.js';
import type { RunAs } from '../../src/postgres/exec.js';
import { PG18_BIN } from './paths.js';

export { PG18_BIN };

/**
 * Scratch PostgreSQL servers for the endpoint and VIP tests: standalone (no
 * replication), trust authentication, bound to one address (loopback or a lab
 * host's), optionally inside a lab namespace. They exist to be forwarded to.
 */

export const PG15_BIN = '/usr/lib/postgresql/15/bin';

/** Why lab tests cannot run here, or null when they can. */
export async function labSkipReason(): Promise<string | null> {
  const reason = await netnsUnsupported();
  if (reason) return reason;
  const tc = await run('tc', ['-V']).catch(() => null);
  return tc && tc.code === 0 ? null : 'tc (iproute2) is not available';
}

export class ScratchPg {
  readonly name: string;
  readonly dir: string;
  readonly host: string;
  readonly port: number;
  private readonly user: RunAs;

  private constructor(name: string, dir: string, host: string, port: number, user: RunAs) {
    this.name = name;
    this.dir = dir;
    this.host = host;
    this.port = port;
    this.user = user;
  }

  get dataDir(): string {
    return path.join(this.dir, 'data');
  }

  /** initdb + start; inside `lab`'s namespace for host `labHost` when given. */
  static async start(opts: { name: string; port: number; host: string; lab?: NetLab; labHost?: string; binDir?: string }): Promise<ScratchPg> {
    const bin = opts.binDir ?? PG18_BIN;
    const user = await resolveOsUser('postgres');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pgm-ep-${opts.name}-`));
    fs.chmodSync(dir, 0o755);
    if (user.uid !== undefined && user.gid !== undefined) fs.chownSync(dir, user.uid, user.gid);
    const pg = new ScratchPg(opts.name, dir, opts.host, opts.port, user);
    const init = await run(path.join(bin, 'initdb'), ['-D', pg.dataDir, '-U', 'postgres', '--auth=trust', '--no-sync', '--no-instructions', '-E', 'UTF8', '--locale=C'], { user });
    if (init.code !== 0) throw new Error(`initdb ${opts.name}: ${init.stderr}`);
    const conf = [
      `listen_addresses = '${opts.host}'`,
      `port = ${opts.port}`,
      `unix_socket_directories = '${dir}'`,
      'max_connections = 250',
      'fsync = off',
      'shared_buffers = 64MB',
      `cluster_name = '${opts.name}'`,
    ];
    fs.appendFileSync(path.join(pg.dataDir, 'postgresql.conf'), `\n${conf.join('\n')}\n`);
    // Lab clients (the root namespace's bridge address) come from the server's own subnet.
    fs.appendFileSync(path.join(pg.dataDir, 'pg_hba.conf'), 'host all all samenet trust\n');
    const args = ['start', '-w', '-t', '60', '-D', pg.dataDir, '-l', path.join(dir, 'server.log')];
    const started = opts.lab && opts.labHost ? await opts.lab.exec(opts.labHost, path.join(bin, 'pg_ctl'), args, { user }) : await run(path.join(bin, 'pg_ctl'), args, { user });
    if (started.code !== 0) {
      const log = fs.existsSync(path.join(dir, 'server.log')) ? fs.readFileSync(path.join(dir, 'server.log'), 'utf8') : '';
      await pg.stop();
      throw new Error(`pg_ctl start ${opts.name}: ${started.stderr} ${log}`);
    }
    return pg;
  }

  get target(): { name: string; host: string; port: number } {
    return { name: this.name, host: this.host, port: this.port };
  }

  /** Stops the server (immediate) and removes its directory; safe to call twice. */
  async stop(): Promise<void> {
    const pidFile = path.join(this.dataDir, 'postmaster.pid');
    if (fs.existsSync(pidFile)) {
      await run(path.join(PG18_BIN, 'pg_ctl'), ['stop', '-m', 'immediate', '-w', '-t', '30', '-D', this.dataDir], { user: this.user });
      if (fs.existsSync(pidFile)) {
        const pid = Number(fs.readFileSync(pidFile, 'utf8').split('\n')[0]);
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A TCP server inside a lab host that answers every connection with `reply`
 * and closes; resolves once it listens. Kill the child to stop it.
 */
export async function replyServer(lab: NetLab, host: string, address: string, port: number, reply: string): Promise<ChildProcess> {
  const code = `require('net').createServer((s) => s.end(${JSON.stringify(reply)})).listen(${port}, ${JSON.stringify(address)}, () => console.log('listening'))`;
  const child = lab.spawn(host, process.execPath, ['-e', code]);
  await new Promise<void>((resolve, reject) => {
    let err = '';
    child.stderr?.on('data', (d) => (err += d));
    child.stdout?.once('data', () => resolve());
    child.once('exit', (c) => reject(new Error(`reply server in ${host} exited (${c}): ${err}`)));
  });
  return child;
}
