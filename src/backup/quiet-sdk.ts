/**
 * Imported before the AWS SDK: the SDK warns, on every process, that its
 * later releases will need Node.js 22. pgmaestro supports Node 20 and says
 * one sentence per error, so that notice (and only it) is dropped.
 */
const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void;
process.emitWarning = ((warning: unknown, ...rest: unknown[]) => {
  const type = typeof rest[0] === 'string' ? rest[0] : (rest[0] as { type?: string } | undefined)?.type;
  if (type === 'NodeVersionSupportWarning' || (typeof warning === 'string' && warning.startsWith('NodeVersionSupportWarning:')) || (warning instanceof Error && warning.name === 'NodeVersionSupportWarning')) return;
  emit(warning, ...rest);
}) as typeof process.emitWarning;

export {};
