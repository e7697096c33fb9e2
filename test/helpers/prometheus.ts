import { createRequire } from 'node:module';

/** A metric family as parse-prometheus-text-format (a Prometheus text-format parser) returns it. */
export interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: string;
  readonly metrics: readonly { readonly value: string; readonly labels?: Readonly<Record<string, string>> }[];
}

const parse = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => Family[];

/** Parses Prometheus text format; throws on what the parser rejects. */
export function parseMetrics(text: string): Family[] {
  return parse(text);
}

/** The value of one sample (labels must match exactly the given ones), or undefined when absent. */
export function sample(families: readonly Family[], name: string, labels: Record<string, string> = {}): number | undefined {
  const f = families.find((x) => x.name === name);
  const m = f?.metrics.find((x) => {
    const l = x.labels ?? {};
    return Object.keys(l).length === Object.keys(labels).length && Object.entries(labels).every(([k, v]) => l[k] === v);
  });
  return m === undefined ? undefined : Number(m.value);
}
