import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ClusterConfig, HostConfig } from '../config/types.js';
import { PgmError } from '../errors.js';
import { run } from '../postgres/exec.js';

/**
 * The cluster's certificates for mutual TLS between agents (and the CLI):
 * a cluster CA and one certificate per host, whose common name is the host's
 * name, made with the `openssl` command line tool (Debian's package), so an
 * administrator can inspect and reproduce every step. Keys are ECDSA P-256
 * and every file lands in secrets/ with mode 0600. Existing files are kept:
 * running it again only adds certificates for new hosts.
 */
export interface CertPaths {
  readonly ca: string;
  readonly caKey: string;
  cert(host: string): string;
  key(host: string): string;
}

export function certPaths(cfg: ClusterConfig): CertPaths {
  const dir = path.join(cfg.dir, 'secrets');
  return {
    ca: path.join(dir, 'ca.crt'),
    caKey: path.join(dir, 'ca.key'),
    cert: (h) => path.join(dir, `${h}.crt`),
    key: (h) => path.join(dir, `${h}.key`),
  };
}

export async function ensureCerts(cfg: ClusterConfig): Promise<string[]> {
  if (cfg.hosts.length === 0) {
    throw new PgmError('usage', `${cfg.file} lists no hosts, so there is no agent to make a certificate for.`, { hint: 'add dcs and hosts to the configuration (see the README, "Several hosts").' });
  }
  const p = certPaths(cfg);
  fs.mkdirSync(path.dirname(p.ca), { recursive: true, mode: 0o700 });
  fs.chmodSync(path.dirname(p.ca), 0o700);
  const made: string[] = [];
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-certs-'));
  try {
    if (!fs.existsSync(p.ca) || !fs.existsSync(p.caKey)) {
      await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', p.caKey]);
      fs.chmodSync(p.caKey, 0o600);
      await openssl(['req', '-x509', '-new', '-key', p.caKey, '-sha256', '-days', '3650', '-subj', `/O=pgmaestro/CN=pgmaestro cluster ${cfg.cluster} CA`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', p.ca]);
      fs.chmodSync(p.ca, 0o600);
      made.push(`cluster CA ${p.ca}`);
    }
    for (const h of cfg.hosts) {
      if (fs.existsSync(p.cert(h.name)) && fs.existsSync(p.key(h.name))) continue;
      await hostCert(p, h, scratch);
      made.push(`certificate of host ${h.name} ${p.cert(h.name)}`);
    }
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  return made;
}

async function hostCert(p: CertPaths, h: HostConfig, scratch: string): Promise<void> {
  const csr = path.join(scratch, `${h.name}.csr`);
  const ext = path.join(scratch, `${h.name}.ext`);
  const san = [`DNS:${h.name}`, /^[\d.]+$/.test(h.agent.host) || h.agent.host.includes(':') ? `IP:${h.agent.host}` : `DNS:${h.agent.host}`];
  fs.writeFileSync(ext, `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=${[...new Set(san)].join(',')}\n`);
  await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', p.key(h.name)]);
  fs.chmodSync(p.key(h.name), 0o600);
  await openssl(['req', '-new', '-key', p.key(h.name), '-subj', `/O=pgmaestro/CN=${h.name}`, '-out', csr]);
  const serial = `0x${crypto.randomBytes(16).toString('hex')}`;
  await openssl(['x509', '-req', '-in', csr, '-CA', p.ca, '-CAkey', p.caKey, '-set_serial', serial, '-days', '825', '-sha256', '-extfile', ext, '-out', p.cert(h.name)]);
  fs.chmodSync(p.cert(h.name), 0o600);
}

async function openssl(args: string[]): Promise<void> {
  let r;
  try {
    r = await run('openssl', args);
  } catch (err) {
    throw new PgmError('tool.missing', `openssl is not installed (${(err as Error).message}).`, { hint: 'apt-get install openssl' });
  }
  if (r.code !== 0) throw new PgmError('certs.invalid', `openssl ${args[0]} failed: ${r.stderr.trim().split('\n').slice(-1)[0]}.`, { hint: 'check the secrets directory is writable.' });
}

export interface TlsIdentity {
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly host: string;
}

/**
 * Loads host `host`'s certificate and key and the cluster CA, and checks that
 * they belong together: the certificate is signed by this CA, names the host,
 * and matches the key. A missing or foreign file is one sentence saying which.
 */
export function loadIdentity(cfg: ClusterConfig, host: string): TlsIdentity {
  const p = certPaths(cfg);
  const read = (file: string, what: string): Buffer => {
    try {
      return fs.readFileSync(file);
    } catch (err) {
      throw new PgmError('certs.invalid', `the ${what} ${file} is missing (${(err as NodeJS.ErrnoException).code}).`, {
        hint: `create the certificates with \`pgmaestro certs -c ${cfg.file}\` and copy secrets/ca.crt, secrets/${host}.crt and secrets/${host}.key to this host.`,
      });
    }
  };
  const ca = read(p.ca, 'cluster CA certificate');
  const cert = read(p.cert(host), `certificate of host ${host}`);
  const key = read(p.key(host), `key of host ${host}`);
  let x509: crypto.X509Certificate;
  let caX509: crypto.X509Certificate;
  try {
    x509 = new crypto.X509Certificate(cert);
    caX509 = new crypto.X509Certificate(ca);
  } catch (err) {
    throw new PgmError('certs.invalid', `${p.cert(host)} or ${p.ca} is not a PEM certificate (${(err as Error).message}).`, { hint: 'create them again with `pgmaestro certs` (move the broken files away first).' });
  }
  if (!x509.verify(caX509.publicKey)) {
    throw new PgmError('certs.invalid', `the certificate ${p.cert(host)} was not issued by this cluster's CA (${p.ca}).`, {
      hint: `copy the CA and host certificates made by \`pgmaestro certs\` for cluster ${cfg.cluster}; never mix files from two clusters.`,
    });
  }
  if (commonName(x509) !== host) {
    throw new PgmError('certs.invalid', `the certificate ${p.cert(host)} is for host ${commonName(x509) ?? '(none)'}, not ${host}.`, { hint: `use secrets/${host}.crt made by pgmaestro certs for this host.` });
  }
  if (!x509.checkPrivateKey(crypto.createPrivateKey(key))) {
    throw new PgmError('certs.invalid', `the key ${p.key(host)} does not belong to the certificate ${p.cert(host)}.`, { hint: 'copy both files from the same `pgmaestro certs` run.' });
  }
  return { ca, cert, key, host };
}

/** The CN of a certificate's subject, or null. */
export function commonName(x: crypto.X509Certificate | { subject?: Record<string, unknown> | string }): string | null {
  if (x instanceof crypto.X509Certificate) {
    const m = /(?:^|\n)CN=([^\n]+)/.exec(x.subject);
    return m ? m[1] : null;
  }
  const s = x.subject;
  if (s && typeof s === 'object' && typeof s.CN === 'string') return s.CN;
  return null;
}
