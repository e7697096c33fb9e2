import { configChangeSuite } from '../helpers/config-change.js';

configChangeSuite('cfg18', { portBase: 22060, replicas: 2 });
