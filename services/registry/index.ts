/** The shard's registries: tenants, endorsed devices and alerts (in memory for now). */
export { ALERT_SEVERITY, AlertLog, OPERATOR_ALERT_SEVERITY, SEVERITIES } from './alerts.js';
export type { Alert, AlertQuery, OperatorAlertType, Severity } from './alerts.js';
export { DEVICE_STATES, DeviceRegistry, deviceState } from './devices.js';
export type { AttestationOutcome, DeviceRecord, DeviceStateName } from './devices.js';
export { TenantRegistry, tokenHash } from './tenants.js';
export type { Tenant } from './tenants.js';
export { DEFAULT_DEVICE_GROUPS, OS_FEEDS, ProductRegistry, UPDATE_POLICIES } from './products.js';
export type { DeviceGroup, OsFeed, Product, ProductError, UpdatePolicy } from './products.js';
export { ImageRegistry, imageTargetName } from './images.js';
export type { ImageRecord } from './images.js';
