import { test } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Inbox } from '../../src/protocol/inbox.js';
import type { BackendMessage } from '../../src/protocol/messages.js';

const copyData = (n: number): BackendMessage => ({ kind: 'copyData', data: Buffer.alloc(n) });

test('inbox: pauses above the high-water mark and resumes at the low one', async () => {
  const calls: string[] = [];
  const inbox = new Inbox({ pause: () => calls.push('pause'), resume: () => calls.push('resume') }, 100, 40);
  for (let i = 0; i < 4; i++) inbox.push(copyData(25)); // 30 bytes each as counted
  assert.deepEqual(calls, ['pause']);
  await inbox.next();
  await inbox.next();
  assert.deepEqual(calls, ['pause']);
  await inbox.next();
  assert.deepEqual(calls, ['pause', 'resume']);
});

test('inbox: a message handed to the reader is not kept alive by the queue, even if it never runs empty', async () => {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const inbox = new Inbox({ pause: () => {}, resume: () => {} });
  let ref: WeakRef<Buffer> | null = null;
  await (async () => {
    inbox.push(copyData(10));
    inbox.push(copyData(1 << 20));
    await inbox.next();
    inbox.push(copyData(10)); // the reader stays one message behind: the queue never empties
    const m = await inbox.next();
    ref = new WeakRef((m as { data: Buffer }).data);
  })();
  for (let i = 0; i < 5 && ref!.deref() !== undefined; i++) {
    await new Promise((r) => setImmediate(r));
    gc();
  }
  assert.equal(ref!.deref(), undefined);
});
