import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { addVip, findArping, removeVip } from '../../src/ha/vip.js';
import { PgmError } from '../../src/errors.js';

/** VIP input checks and tool discovery; nothing here touches an interface. */

test('a missing arping is a clear error naming the Debian packages', async () => {
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-noarping-'));
  try {
    await assert.rejects(findArping([empty]), (err: unknown) => {
      assert.ok(err instanceof PgmError);
      assert.equal(err.code, 'tool.missing');
      assert.match(err.message, /^arping is not installed/);
      assert.match(err.render(), /HINT: install it: apt-get install arping \(or iputils-arping\)\.$/);
      return true;
    });
  } finally {
    fs.rmSync(empty, { recursive: true, force: true });
  }
});

test('an arping on the search path is found and its flavour recognised', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-arping-'));
  try {
    const fake = path.join(dir, 'arping');
    fs.writeFileSync(fake, '#!/bin/sh\necho "ARPing 2.23, by Thomas Habets <thomas@habets.se>"\n', { mode: 0o755 });
    assert.deepEqual(await findArping([dir]), { path: fake, flavour: 'habets' });
    fs.writeFileSync(fake, '#!/bin/sh\necho "Usage: arping [-fqbDUAV] [-c count] [-w timeout] [-I device] [-s source] destination" >&2\nexit 2\n');
    assert.deepEqual(await findArping([dir]), { path: fake, flavour: 'iputils' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EACCES') t.skip('temporary directory is mounted noexec');
    else throw err;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a malformed VIP is refused before anything runs', async () => {
  for (const address of ['10.0.0.300/24', '10.0.0.1/33', 'fe80::1/64', '10.0.0.1/24/1', '10.0.0.1/x', 'vip']) {
    for (const call of [addVip, removeVip]) {
      await assert.rejects(call({ address, iface: 'eth0' }), (err: unknown) => err instanceof PgmError && err.code === 'config.invalid' && err.message.includes(`'${address}'`), address);
    }
  }
});
