/** Runs scenarios: builds the fleet, drives it against a live service, records and summarizes. */
export { FLEET_STARTED, runScenario } from './run.js';
export type { HistoryBucket, HistoryDevice, HistoryReport, RunHistory } from './history.js';
export { HISTORY_VERSION } from './history.js';
export type { RunOptions } from './run.js';
export { FleetLinks, deviceBehaviour, deviceProfile, manufactureFleet, spawnFleet } from './fleet.js';
export { RunRecorder } from './recorder.js';
export type { DeviceTrack } from './recorder.js';
export { enrollFleet, serviceClock } from './setup.js';
