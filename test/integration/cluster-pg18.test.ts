import { lifecycleSuite } from '../helpers/lifecycle.js';

lifecycleSuite('pg18', { portBase: 26100, major: 18 });
