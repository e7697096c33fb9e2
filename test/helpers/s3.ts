import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { REPO } from './paths.js';

/**
 * A real S3-compatible server (s3rver from npm) in its own process, so a test
 * can make it stop answering (SIGSTOP) and answer again (SIGCONT). Its
 * default credentials are S3RVER / S3RVER.
 */
export class S3Server {
  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly child: ChildProcess,
  ) {}

  static async start(dir: string, port: number, bucket: string): Promise<S3Server> {
    fs.mkdirSync(dir, { recursive: true });
    const child = spawn(process.execPath, [path.join(REPO, 'node_modules', 's3rver', 'bin', 's3rver.js'), '-d', dir, '-a', '127.0.0.1', '-p', String(port), '-s', '--configure-bucket', bucket], { stdio: 'ignore' });
    const s = new S3Server(port, dir, child);
    for (let i = 0; i < 100; i++) {
      if (await listening(port)) return s;
      await new Promise((r) => setTimeout(r, 100));
    }
    s.stop();
    throw new Error(`s3rver did not listen on ${port}`);
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Writes an AWS shared-credentials file (0600) and returns its path. */
  credentials(dir: string, key = 'S3RVER', secret = 'S3RVER'): string {
    const file = path.join(dir, 's3.credentials');
    fs.writeFileSync(file, `[default]\naws_access_key_id = ${key}\naws_secret_access_key = ${secret}\n`, { mode: 0o600 });
    return file;
  }

  pause(): void {
    this.child.kill('SIGSTOP');
  }

  resume(): void {
    this.child.kill('SIGCONT');
  }

  stop(): void {
    try {
      this.child.kill('SIGCONT');
      this.child.kill('SIGKILL');
    } catch {
      // gone
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Points a cluster's pgmaestro.yaml at an S3 repository. */
export function useS3(file: string, s3: S3Server, bucket: string, prefix: string, credentials: string, extra = ''): void {
  const text = fs.readFileSync(file, 'utf8').replace(/repository: \S+/, `repository: s3://${bucket}/${prefix}\n  s3:\n    endpoint: ${s3.endpoint}\n    credentials_file: ${credentials}\n    path_style: true\n    timeout: 8s${extra}`);
  fs.writeFileSync(file, text);
}
