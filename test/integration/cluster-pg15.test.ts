import { lifecycleSuite } from '../helpers/lifecycle.js';
import { PG15_BIN } from '../helpers/paths.js';

lifecycleSuite('pg15', { portBase: 26200, binDir: PG15_BIN, major: 15 });
