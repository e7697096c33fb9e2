import { slotSuite } from '../helpers/slots.js';
import { PG15_BIN } from '../helpers/paths.js';

slotSuite('slot15', { portBase: 22120, binDir: PG15_BIN });
