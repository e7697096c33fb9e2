import './quiet-sdk.js';
import fs from 'node:fs';
import { PassThrough, type Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { PgmError } from '../errors.js';
import { eachLimited, missingFile, type AppendFile, type RawWriter, type Storage } from './storage.js';

export interface S3Settings {
  readonly bucket: string;
  /** Key prefix without leading or trailing slash ('' for the bucket's root). */
  readonly prefix: string;
  /** e.g. http://127.0.0.1:9000; undefined for AWS itself. */
  readonly endpoint?: string;
  readonly region: string;
  /** AWS shared-credentials file (mode 0600); undefined: the standard AWS_* environment. */
  readonly credentialsFile?: string;
  readonly pathStyle: boolean;
  /** A request that sends or receives nothing for this long fails (and is retried). */
  readonly timeoutMs: number;
}

type Sdk = typeof import('@aws-sdk/client-s3') & { Upload: typeof import('@aws-sdk/lib-storage').Upload };

/** Parts of a multipart upload; at most two in flight per file, so memory stays at ~3 parts per open file. */
const PART_SIZE = 8 << 20;

/**
 * A repository in an S3 bucket (AWS or any S3-compatible server). Objects
 * are written by streaming multipart uploads (a file is never held whole in
 * memory) and become visible only when complete; every request is retried
 * with backoff by the client. Credentials come from `credentialsFile` or the
 * environment and never appear in a message, a process list or a log.
 */
export class S3Storage implements Storage {
  readonly location: string;
  private sdkLoaded: Promise<Sdk> | null = null;
  private client!: S3Client;

  constructor(readonly s: S3Settings) {
    this.location = `s3://${s.bucket}${s.prefix ? `/${s.prefix}` : ''}`;
  }

  /** The SDK is loaded on first use: it costs a third of a second, which commands without S3 should not pay. */
  private sdk(): Promise<Sdk> {
    return (this.sdkLoaded ??= (async () => {
      const [s3, storage] = await Promise.all([import('@aws-sdk/client-s3'), import('@aws-sdk/lib-storage')]);
      const s = this.s;
      this.client = new s3.S3Client({
        region: s.region,
        endpoint: s.endpoint,
        forcePathStyle: s.pathStyle,
        credentials: s.credentialsFile ? readCredentials(s.credentialsFile) : undefined,
        maxAttempts: 4,
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
        requestHandler: { connectionTimeout: s.timeoutMs, requestTimeout: s.timeoutMs, throwOnRequestTimeout: true },
      });
      return { ...s3, Upload: storage.Upload };
    })());
  }

  private key(rel: string): string {
    const r = rel.replace(/^\.?\/+/, '').replace(/\/+$/, '');
    return this.s.prefix ? (r === '' || r === '.' ? this.s.prefix : `${this.s.prefix}/${r}`) : r;
  }

  localPath(): null {
    return null;
  }

  async check(): Promise<void> {
    const sdk = await this.sdk();
    await this.call('open', () => this.client.send(new sdk.HeadBucketCommand({ Bucket: this.s.bucket })));
  }

  async exists(rel: string): Promise<boolean> {
    const sdk = await this.sdk();
    try {
      await this.call(rel, () => this.client.send(new sdk.HeadObjectCommand({ Bucket: this.s.bucket, Key: this.key(rel) })));
      return true;
    } catch (err) {
      if (!(err instanceof PgmError && err.code === 'repository.missing')) throw err;
    }
    const r = await this.call(rel, () => this.client.send(new sdk.ListObjectsV2Command({ Bucket: this.s.bucket, Prefix: `${this.key(rel)}/`, MaxKeys: 1 })));
    return (r.KeyCount ?? 0) > 0;
  }

  async list(rel: string): Promise<string[]> {
    const sdk = await this.sdk();
    const base = this.key(rel);
    const prefix = base === '' ? '' : `${base}/`;
    const names = new Set<string>();
    let token: string | undefined;
    do {
      const r = await this.call(rel, () => this.client.send(new sdk.ListObjectsV2Command({ Bucket: this.s.bucket, Prefix: prefix, Delimiter: '/', ContinuationToken: token })));
      for (const p of r.CommonPrefixes ?? []) if (p.Prefix) names.add(p.Prefix.slice(prefix.length).replace(/\/$/, ''));
      for (const o of r.Contents ?? []) if (o.Key) names.add(o.Key.slice(prefix.length));
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    names.delete('');
    return [...names].sort();
  }

  /** Every object key below `rel`, relative to it. */
  private async listDeep(rel: string): Promise<string[]> {
    const sdk = await this.sdk();
    const prefix = `${this.key(rel)}/`;
    const out: string[] = [];
    let token: string | undefined;
    do {
      const r = await this.call(rel, () => this.client.send(new sdk.ListObjectsV2Command({ Bucket: this.s.bucket, Prefix: prefix, ContinuationToken: token })));
      for (const o of r.Contents ?? []) if (o.Key) out.push(o.Key);
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  async read(rel: string): Promise<Buffer> {
    const sdk = await this.sdk();
    const r = await this.call(rel, () => this.client.send(new sdk.GetObjectCommand({ Bucket: this.s.bucket, Key: this.key(rel) })));
    return this.call(rel, async () => Buffer.from(await r.Body!.transformToByteArray()));
  }

  async put(rel: string, data: Buffer | string): Promise<void> {
    const sdk = await this.sdk();
    const body = typeof data === 'string' ? Buffer.from(data) : data;
    await this.call(rel, () => this.client.send(new sdk.PutObjectCommand({ Bucket: this.s.bucket, Key: this.key(rel), Body: body, ContentLength: body.length })));
  }

  async writer(rel: string): Promise<RawWriter> {
    const sdk = await this.sdk();
    const body = new PassThrough({ highWaterMark: 1 << 20 });
    const upload = new sdk.Upload({ client: this.client, params: { Bucket: this.s.bucket, Key: this.key(rel), Body: body }, partSize: PART_SIZE, queueSize: 2, leavePartsOnError: false });
    let failure: unknown = null;
    const done = upload.done().catch((err: unknown) => {
      failure = err;
      body.destroy();
    });
    const fail = () => this.call(rel, () => Promise.reject(failure));
    return {
      write: async (chunk) => {
        if (failure) await fail();
        if (!body.write(chunk)) await new Promise<void>((resolve) => {
          body.once('drain', resolve);
          body.once('close', resolve);
        });
        if (failure) await fail();
      },
      end: async () => {
        body.end();
        await done;
        if (failure) await fail();
      },
      abort: async () => {
        await upload.abort().catch(() => undefined);
        body.destroy();
        await done;
      },
    };
  }

  async syncDeferred(): Promise<void> {
    // a completed upload is durable
  }

  async appendFile(): Promise<AppendFile | null> {
    return null; // an object cannot grow: the WAL archiver stores the segment in progress as chunk objects
  }

  async *readRange(rel: string, offset: number, length: number): AsyncIterable<Buffer> {
    if (length === 0) return;
    const sdk = await this.sdk();
    const r = await this.call(rel, () => this.client.send(new sdk.GetObjectCommand({ Bucket: this.s.bucket, Key: this.key(rel), Range: `bytes=${offset}-${offset + length - 1}` })));
    const body = r.Body as Readable;
    try {
      for await (const chunk of body) yield chunk as Buffer;
    } catch (err) {
      await this.call(rel, () => Promise.reject(err));
    }
  }

  async *reader(rel: string): AsyncIterable<Buffer> {
    const sdk = await this.sdk();
    const r = await this.call(rel, () => this.client.send(new sdk.GetObjectCommand({ Bucket: this.s.bucket, Key: this.key(rel) })));
    const body = r.Body as Readable;
    try {
      for await (const chunk of body) yield chunk as Buffer;
    } catch (err) {
      await this.call(rel, () => Promise.reject(err));
    }
  }

  async remove(rel: string): Promise<void> {
    const sdk = await this.sdk();
    const keys = [this.key(rel), ...(await this.listDeep(rel))];
    await eachLimited(keys, 16, async (Key) => {
      await this.call(rel, () => this.client.send(new sdk.DeleteObjectCommand({ Bucket: this.s.bucket, Key })));
    });
  }

  async close(): Promise<void> {
    if (this.sdkLoaded && (await this.sdkLoaded.catch(() => null))) this.client.destroy();
  }

  /** Runs one request; turns what S3 answered (or did not) into one sentence. */
  private async call<T>(rel: string, f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (err) {
      throw s3Error(this, rel, err);
    }
  }
}

function s3Error(s: S3Storage, rel: string, err: unknown): PgmError {
  if (err instanceof PgmError) return err;
  const e = err as { name?: string; Code?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  const named = e.Code ?? e.name ?? e.code ?? '';
  const code = named && named !== 'Unknown' ? named : status ? `HTTP ${status}` : '';
  const where = s.s.endpoint ?? `AWS (${s.s.region})`;
  if (code === 'NoSuchBucket' || (rel === 'open' && status === 404)) {
    return new PgmError('repository.invalid', `the S3 bucket ${s.s.bucket} does not exist at ${where}.`, {
      hint: 'create the bucket, or fix backup.repository (s3://BUCKET/PREFIX) and backup.s3.endpoint.',
      cause: err,
    });
  }
  if (code === 'NoSuchKey' || code === 'NotFound' || status === 404) return missingFile(s.location, rel, err);
  if (['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'ExpiredToken', 'InvalidToken', 'Forbidden', 'CredentialsProviderError'].includes(code) || status === 403) {
    return new PgmError('repository.invalid', `S3 at ${where} refused the credentials for ${s.location} (${code || status}).`, {
      hint: 'check backup.s3.credentials_file (AWS shared-credentials format: aws_access_key_id, aws_secret_access_key) or the AWS_* environment.',
      cause: err,
    });
  }
  return new PgmError('repository.unreachable', `S3 at ${where} did not complete a request for ${rel === 'open' ? s.location : `${s.location}/${rel}`}: ${code || 'error'}${e.message && e.message !== code ? ` (${e.message.replace(/\.$/, '')})` : ''}.`, {
    hint: 'check that the S3 endpoint is up and reachable; the WAL archiver retries by itself, a backup can be run again.',
    cause: err,
  });
}

/**
 * Reads an AWS shared-credentials file ([default] aws_access_key_id = …,
 * aws_secret_access_key = …, optional aws_session_token). It must not be
 * readable by others: a secret that any local user can read is refused.
 */
export function readCredentials(file: string): { accessKeyId: string; secretAccessKey: string; sessionToken?: string } {
  let text: string;
  try {
    const st = fs.statSync(file);
    if ((st.mode & 0o077) !== 0) {
      throw new PgmError('config.invalid', `the S3 credentials file ${file} is readable by other users (mode ${(st.mode & 0o777).toString(8)}).`, { hint: `chmod 600 ${file}.` });
    }
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof PgmError) throw err;
    throw new PgmError('config.invalid', `cannot read the S3 credentials file ${file}: ${(err as Error).message}.`, { hint: 'set backup.s3.credentials_file to a readable 0600 file in AWS shared-credentials format.', cause: err });
  }
  const values = new Map<string, string>();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) section = s[1].trim();
    else if (section === 'default') {
      const m = /^([a-z_]+)\s*=\s*(.*)$/.exec(line);
      if (m) values.set(m[1], m[2].trim());
    }
  }
  const accessKeyId = values.get('aws_access_key_id');
  const secretAccessKey = values.get('aws_secret_access_key');
  if (!accessKeyId || !secretAccessKey) {
    throw new PgmError('config.invalid', `the S3 credentials file ${file} has no [default] section with aws_access_key_id and aws_secret_access_key.`, { hint: 'write it in AWS shared-credentials format.' });
  }
  return { accessKeyId, secretAccessKey, sessionToken: values.get('aws_session_token') };
}
