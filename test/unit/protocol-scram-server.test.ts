import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { ScramClient, hmac, keysFromPassword, verifyServerFinal } from '../../src/protocol/scram.js';
import { ScramServer, mockVerifier, parseVerifier, type Verifier } from '../../src/protocol/scram-server.js';

// RFC 7677, section 3: user 'user', password 'pencil'.
const clientNonce = 'rOprNGfwEbeRWgbNEkqO';
const serverNonce = '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0';
const salt = Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64');
const clientFirst = 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO';
const serverFirst = 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096';
const clientFinal = 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=';
const serverFinal = 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=';

/** The verifier PostgreSQL stores for a password (pg_authid.rolpassword). */
function verifierFor(password: string, s = salt, iterations = 4096): Verifier {
  const k = keysFromPassword(password, s, iterations);
  return { iterations, salt: s, storedKey: createHash('sha256').update(k.clientKey).digest(), serverKey: k.serverKey };
}
const rfc = verifierFor('pencil');
const rolpassword = (v: Verifier) => `SCRAM-SHA-256$${v.iterations}:${v.salt.toString('base64')}$${v.storedKey.toString('base64')}:${v.serverKey.toString('base64')}`;

test('scram server: RFC 7677 test vector, byte for byte', () => {
  const s = new ScramServer(rfc, serverNonce);
  assert.deepEqual(s.first(clientFirst), { ok: true, message: serverFirst });
  const f = s.final(clientFinal);
  assert.ok(f.ok);
  assert.equal(f.message, serverFinal);
});

test('scram server: the proof yields the client\'s ClientKey and ServerKey, and nothing about the password', () => {
  const s = new ScramServer(rfc, serverNonce);
  s.first(clientFirst);
  const f = s.final(clientFinal);
  assert.ok(f.ok);
  const fromPassword = keysFromPassword('pencil', salt, 4096);
  assert.deepEqual(f.keys.clientKey, fromPassword.clientKey);
  assert.deepEqual(f.keys.serverKey, fromPassword.serverKey);
});

test('scram server: the recovered keys authenticate a new exchange as the same user (the router\'s pooled connections)', () => {
  // first, the client proves itself to the router
  const client = new ScramClient('', 'correct horse');
  const v = verifierFor('correct horse', Buffer.from('0123456789abcdef'), 4096);
  const router = new ScramServer(v);
  const s1 = router.first(client.first());
  assert.ok(s1.ok);
  const s2 = router.final(client.final(s1.message));
  assert.ok(s2.ok);
  client.verify(s2.message);
  // then the router proves itself to a server holding the same verifier, with the keys only
  const again = new ScramClient('', s2.keys);
  const server = new ScramServer(v);
  const t1 = server.first(again.first());
  assert.ok(t1.ok);
  const t2 = server.final(again.final(t1.message));
  assert.ok(t2.ok, 'the server accepts the proof made from the recovered keys');
  again.verify(t2.message);
});

test('scram server: a wrong password is refused', () => {
  const client = new ScramClient('', 'wrong');
  const s = new ScramServer(rfc);
  const s1 = s.first(client.first());
  assert.ok(s1.ok);
  assert.deepEqual(s.final(client.final(s1.message)), { ok: false, reason: 'wrong password' });
});

test('scram server: a client that offers channel binding it thinks we lack (y) is accepted; one that requires it (p) is refused', () => {
  const s = new ScramServer(rfc, serverNonce);
  const first = s.first('y,,n=,r=abc');
  assert.ok(first.ok);
  assert.equal(first.message, `r=abc${serverNonce},s=${salt.toString('base64')},i=4096`);
  // the final message must echo the y header in c=
  const bad = s.final(`c=${Buffer.from('n,,').toString('base64')},r=abc${serverNonce},p=${Buffer.alloc(32).toString('base64')}`);
  assert.deepEqual(bad, { ok: false, reason: 'unexpected SCRAM channel-binding attribute in client-final-message' });
  assert.deepEqual(new ScramServer(rfc).first('p=tls-server-end-point,,n=,r=abc'), { ok: false, reason: 'channel binding is not supported by this server' });
});

test('scram server: malformed and unsupported client-first messages', () => {
  const first = (m: string) => new ScramServer(rfc).first(m);
  assert.deepEqual(first('garbage'), { ok: false, reason: 'malformed SCRAM message (client-first-message)' });
  assert.deepEqual(first('n,a=admin,n=,r=abc'), { ok: false, reason: 'client uses authorization identity, but it is not supported' });
  assert.deepEqual(first('n,,m=ext,n=,r=abc'), { ok: false, reason: 'client requires an unsupported SCRAM extension' });
  assert.deepEqual(first('n,,n='), { ok: false, reason: 'malformed SCRAM message (client nonce)' });
  assert.deepEqual(new ScramServer(rfc, 'S').first('n,,n=,r=a,x=1'), { ok: true, message: `r=aS,s=${salt.toString('base64')},i=4096` }, 'unknown attributes are ignored');
  assert.deepEqual(first('n,,n=,r=a b'), { ok: false, reason: 'malformed SCRAM message (client nonce)' }, 'a space is not a printable nonce character');
});

test('scram server: malformed client-final messages, and messages out of order', () => {
  const started = () => {
    const s = new ScramServer(rfc, serverNonce);
    assert.ok(s.first(clientFirst).ok);
    return s;
  };
  assert.deepEqual(new ScramServer(rfc).final(clientFinal), { ok: false, reason: 'SCRAM messages out of order' });
  assert.deepEqual(started().final('c=biws,r=x'), { ok: false, reason: 'malformed SCRAM message (no proof)' });
  assert.deepEqual(started().final(clientFinal.replace('r=rOpr', 'r=XOpr')), { ok: false, reason: 'SCRAM nonce mismatch' });
  assert.deepEqual(started().final(clientFinal.replace(/p=.*$/, 'p=c2hvcnQ=')), { ok: false, reason: 'malformed SCRAM message (invalid proof)' });
  const once = started();
  assert.ok(once.final(clientFinal).ok);
  assert.deepEqual(once.final(clientFinal), { ok: false, reason: 'SCRAM messages out of order' }, 'a replayed final is refused');
});

test('scram server: a tampered proof is a wrong password', () => {
  const s = new ScramServer(rfc, serverNonce);
  s.first(clientFirst);
  const proof = Buffer.from(clientFinal.slice(clientFinal.indexOf(',p=') + 3), 'base64');
  proof[0] ^= 1;
  assert.deepEqual(s.final(clientFinal.replace(/p=.*$/, `p=${proof.toString('base64')}`)), { ok: false, reason: 'wrong password' });
});

test('scram server: the server nonce is fresh for each exchange by default', () => {
  const a = new ScramServer(rfc).first('n,,n=,r=abc');
  const b = new ScramServer(rfc).first('n,,n=,r=abc');
  assert.ok(a.ok && b.ok);
  assert.notEqual(a.message, b.message);
});

test('verifier: parses pg_authid.rolpassword of SCRAM-SHA-256, nothing else', () => {
  assert.deepEqual(parseVerifier(rolpassword(rfc)), rfc);
  assert.equal(parseVerifier(null), null);
  assert.equal(parseVerifier(''), null);
  assert.equal(parseVerifier('md5d41d8cd98f00b204e9800998ecf8427e'), null);
  assert.equal(parseVerifier('SCRAM-SHA-256$4096:c2FsdA==$c2hvcnQ=:c2hvcnQ='), null, 'keys must be 32 bytes');
  assert.equal(parseVerifier(`${rolpassword(rfc)}x`), null);
  assert.equal(parseVerifier(rolpassword(rfc).replace('4096', 'many')), null);
});

test('verifier: the mock verifier of a missing role has a stable salt per user, so probing does not tell missing from wrong', () => {
  const secret = Buffer.alloc(32, 1);
  const a1 = mockVerifier('ghost', secret);
  const a2 = mockVerifier('ghost', secret);
  const b = mockVerifier('other', secret);
  assert.deepEqual(a1.salt, a2.salt);
  assert.notDeepEqual(a1.salt, b.salt);
  assert.equal(a1.iterations, 4096);
  const client = new ScramClient('', 'anything');
  const s = new ScramServer(a1);
  const s1 = s.first(client.first());
  assert.ok(s1.ok);
  assert.deepEqual(s.final(client.final(s1.message)), { ok: false, reason: 'wrong password' });
});

test('scram server: the server signature checks out with the client\'s own verification', () => {
  const s = new ScramServer(rfc, serverNonce);
  s.first(clientFirst);
  const f = s.final(clientFinal);
  assert.ok(f.ok);
  const authMessage = `n=user,r=${clientNonce},${serverFirst},c=biws,r=${clientNonce}${serverNonce}`;
  verifyServerFinal(f.message, hmac(rfc.serverKey, authMessage).toString('base64'));
});
