import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ScramClient, clientFinal, clientFirstMessage, clientFirstMessageBare, parseServerFirst, verifyServerFinal } from '../../src/protocol/scram.js';

// RFC 7677, section 3. The RFC's server-final is v=…/dB5nLTJRsjl95G4= (checked
// independently with Python's hashlib); '…/dkxAI0ajnHFtB9I=' circulates as a
// misquotation and must be rejected.
const clientNonce = 'rOprNGfwEbeRWgbNEkqO';
const serverFirst = 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096';
const expectedClientFinal = 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=';
const serverFinal = 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=';
const misquotedServerFinal = 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dkxAI0ajnHFtB9I=';

test('scram: RFC 7677 test vector with the pure functions', () => {
  assert.equal(clientFirstMessage('user', clientNonce), 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO');
  const parsed = parseServerFirst(serverFirst, clientNonce);
  assert.equal(parsed.iterations, 4096);
  const out = clientFinal({ password: 'pencil', clientFirstBare: clientFirstMessageBare('user', clientNonce), serverFirst: parsed });
  assert.equal(out.message, expectedClientFinal);
  assert.equal(out.expectedServerSignature, '6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=');
  verifyServerFinal(serverFinal, out.expectedServerSignature);
});

test('scram: RFC 7677 test vector with ScramClient', () => {
  const c = new ScramClient('user', 'pencil', clientNonce);
  assert.equal(c.first(), 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO');
  assert.equal(c.final(serverFirst), expectedClientFinal);
  c.verify(serverFinal);
});

test('scram: a wrong server signature fails authentication', () => {
  const c = new ScramClient('user', 'pencil', clientNonce);
  c.final(serverFirst);
  assert.throws(() => c.verify(misquotedServerFinal), { code: 'protocol.auth_failed' });
  assert.throws(() => c.verify('v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='), { code: 'protocol.auth_failed', message: /signature/ });
  assert.throws(() => c.verify('e=invalid-proof'), { code: 'protocol.auth_failed', message: /invalid-proof/ });
});

test('scram: the server nonce must extend the client nonce', () => {
  assert.throws(() => parseServerFirst('r=someoneElse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096', clientNonce), { code: 'protocol.auth_failed' });
  assert.throws(() => parseServerFirst(`r=${clientNonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`, clientNonce), { code: 'protocol.auth_failed' });
  assert.throws(() => parseServerFirst(`r=${clientNonce}x,s=abc,i=0`, clientNonce), { code: 'protocol.auth_failed' });
});

test('scram: final before server-first is refused', () => {
  assert.throws(() => new ScramClient('', 'pw').verify(serverFinal), { code: 'protocol.auth_failed' });
});

test('scram: user names escape = and ,', () => {
  assert.equal(clientFirstMessageBare('a=b,c', 'N'), 'n=a=3Db=2Cc,r=N');
});

test('scram: the default nonce is fresh and comma-free', () => {
  const a = new ScramClient('', 'pw').first();
  const b = new ScramClient('', 'pw').first();
  assert.notEqual(a, b);
  assert.match(a, /^n,,n=,r=[^,]{20,}$/);
});
