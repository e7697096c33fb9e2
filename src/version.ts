import fs from 'node:fs';

/** pgmaestro's version, from its package.json (two levels above src/ and dist/ files alike). */
export const PGMAESTRO_VERSION: string = (() => {
  try {
    return (JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
})();
