import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PgmError } from '../errors.js';

/**
 * The page's files, read once into memory: the console's own (under
 * src/web/static, used as they are by both the sources and the compiled
 * build) and uPlot from node_modules, so the page needs no network.
 */
export interface Asset {
  readonly type: string;
  readonly body: Buffer;
}

const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const STATIC_DIR = path.join(PACKAGE_ROOT, 'src', 'web', 'static');

export interface Assets {
  /** The page itself (served only with access). */
  readonly page: Asset;
  /** The login page (served with the 401). */
  readonly login: string;
  /** Public files under /static/: no secret and nothing cluster-specific in them. */
  readonly files: ReadonlyMap<string, Asset>;
}

export function loadAssets(): Assets {
  const uplot = path.dirname(createRequire(import.meta.url).resolve('uplot/package.json'));
  const read = (file: string, type: string): Asset => {
    try {
      return { type, body: fs.readFileSync(file) };
    } catch (err) {
      throw new PgmError('daemon.failed', `the console's file ${file} is missing (${(err as NodeJS.ErrnoException).code ?? String(err)}).`, {
        hint: 'reinstall pgmaestro (npm ci) so src/web/static and node_modules/uplot are complete.',
        cause: err,
      });
    }
  };
  const css = 'text/css; charset=utf-8';
  const js = 'text/javascript; charset=utf-8';
  return {
    page: read(path.join(STATIC_DIR, 'console.html'), 'text/html; charset=utf-8'),
    login: read(path.join(STATIC_DIR, 'login.html'), 'text/html; charset=utf-8').body.toString('utf8'),
    files: new Map([
      ['console.js', read(path.join(STATIC_DIR, 'console.js'), js)],
      ['console.css', read(path.join(STATIC_DIR, 'console.css'), css)],
      ['uplot.js', read(path.join(uplot, 'dist', 'uPlot.iife.min.js'), js)],
      ['uplot.css', read(path.join(uplot, 'dist', 'uPlot.min.css'), css)],
    ]),
  };
}
