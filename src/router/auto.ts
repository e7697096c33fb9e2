import { PgmError } from '../errors.js';
import type { EndpointService, ServiceDeps } from './service.js';

export function makeAutoService(_deps: ServiceDeps): EndpointService {
  throw new PgmError('usage', 'the auto endpoint is not available yet.', { hint: 'set endpoints.auto: false.' });
}
