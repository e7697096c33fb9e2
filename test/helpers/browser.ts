import { chromium, type Browser, type BrowserContext } from 'playwright-core';

/**
 * Debian's Chromium, headless, driven by playwright-core (never a downloaded
 * browser). The flags keep it off the network (which is closed here anyway):
 * no background requests, component updates, sync or QUIC. Playwright gives
 * the browser a fresh profile directory of its own and removes it on close;
 * each `newContext()` is a separate cookie jar (one per user of a test).
 */
export async function launchBrowser(): Promise<{ newContext: () => Promise<BrowserContext>; close: () => Promise<void> }> {
  const args = ['--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
  if (process.getuid?.() === 0) args.unshift('--no-sandbox');
  const browser: Browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args });
  return {
    newContext: () => browser.newContext({ viewport: { width: 1400, height: 1600 } }),
    close: () => browser.close().catch(() => undefined),
  };
}
