import fs from 'node:fs';
import path from 'node:path';

/**
 * The console's last line of defence: every value stored in the cluster's
 * secrets directory (passwords, passfiles' passwords, the console tokens,
 * object-store credentials once they live there) is replaced by
 * `[redacted]` in whatever the console sends — page data, live updates,
 * metrics, error sentences. The views are built field by field so no
 * secret should reach this point; this makes sure none leaves.
 */
export class Redactor {
  private values: string[] = [];
  private readAt = 0;

  constructor(
    private readonly secretsDir: string,
    private readonly extra: () => readonly string[] = () => [],
    private readonly maxAgeMs = 5000,
  ) {}

  redact(text: string): string {
    let out = text;
    for (const v of this.secrets()) if (out.includes(v)) out = out.split(v).join('[redacted]');
    return out;
  }

  /** The values to hide, longest first (so a secret containing another is hidden whole), with their JSON-escaped forms. */
  secrets(): readonly string[] {
    if (Date.now() - this.readAt > this.maxAgeMs) {
      const found = new Set<string>();
      for (const v of [...secretValues(this.secretsDir), ...this.extra()]) {
        if (v.length < 8) continue;
        found.add(v);
        found.add(JSON.stringify(v).slice(1, -1));
      }
      this.values = [...found].sort((a, b) => b.length - a.length);
      this.readAt = Date.now();
    }
    return this.values;
  }
}

/** Each line of each file in `dir`, and the password field of passfile lines. */
export function secretValues(dir: string): string[] {
  const out: string[] = [];
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    let text = '';
    try {
      const file = path.join(dir, name);
      if (!fs.statSync(file).isFile() || fs.statSync(file).size > 65536) continue;
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const raw of text.split('\n')) {
      const line = raw.trim();
      if (line === '') continue;
      out.push(line);
      const fields = line.split(':');
      if (fields.length >= 5) out.push(fields.slice(4).join(':'));
    }
  }
  return out;
}
