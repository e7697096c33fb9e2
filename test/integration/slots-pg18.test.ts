import { slotSuite } from '../helpers/slots.js';

slotSuite('slot18', { portBase: 22100 });
