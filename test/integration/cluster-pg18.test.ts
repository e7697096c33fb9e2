import { lifecycleSuite } from '../helpers/lifecycle.js';

lifecycleSuite('pg18', { portBase: 56100, major: 18 });
