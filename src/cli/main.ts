#!/usr/bin/env node
/**
 * The CLI's entry. The long-running helper processes (`endpoint KIND`,
 * `supervise`, `spare`) load only what they run, so a restart after a crash is quick;
 * every other command loads the full command set.
 */
const verb = process.argv[2];
if (verb === 'endpoint' || verb === 'supervise' || verb === 'spare') await import('./helpers.js');
else await import('./program.js');
