/** The cluster state's types live with the state store (src/dcs/); re-exported here for the cluster domain's callers. */
export { nextState, DEFAULT_GROUP, type ClusterState, type StateStore } from '../dcs/store.js';
