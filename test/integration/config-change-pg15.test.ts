import { configChangeSuite } from '../helpers/config-change.js';
import { PG15_BIN } from '../helpers/paths.js';

configChangeSuite('cfg15', { portBase: 22080, replicas: 1, binDir: PG15_BIN });
