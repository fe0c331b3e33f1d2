import type {
  DeploymentId,
  DeviceGroupId,
  DeviceId,
  ImageId,
  ProductId,
  TenantId,
} from '../../proto/codec/index.js';
import type { RolloutConfig } from '../rollouts/index.js';
import type { Alert as StoredAlert, AlertLog } from '../registry/index.js';
import type { ErrorReportStore } from '../error-reports/index.js';
import type { OsFeed, UpdatePolicy } from '../registry/index.js';
import type {
  GetFleetStatsResponse,
  GetServiceInfoResponse,
  Device,
  ClaimDevicesResponse,
  RegisterEndorsementsResponse,
  CreateTenantResponse,
  AssignDevicesResponse,
  CreateProductResponse,
  DeviceGroup,
  Image,
  Product,
  UploadImageResponse,
  Rollout as RolloutView,
} from '../../proto/gen/sphere/operator/v1/operator.js';

/** Who is calling, established from the bearer token. */
export type Caller = { readonly kind: 'admin' } | { readonly kind: 'tenant'; readonly tenantId: TenantId };

/** A validated ListAlerts query. */
export interface AlertPageQuery {
  readonly sinceMs: number;
  readonly afterSeq: number;
  readonly limit: number;
  readonly deviceId?: string;
  readonly type?: string;
}

/**
 * What the operator API needs from a shard. Every tenant-scoped method receives the caller's
 * tenant and must never return another tenant's data (a device of another tenant reads as
 * not found, exactly like a device that does not exist).
 */
export interface OperatorBackend {
  authenticate(token: string): Caller | null;
  createTenant(name: string): Promise<CreateTenantResponse>;
  registerEndorsements(publicKeys: readonly Uint8Array[]): Promise<RegisterEndorsementsResponse>;
  claimDevices(tenantId: TenantId, deviceIds: readonly DeviceId[]): Promise<ClaimDevicesResponse>;
  getDevice(tenantId: TenantId, deviceId: DeviceId): Promise<Device | null>;
  /** `tenantId` null: the alerts no tenant owns (the service admin's view). */
  listAlerts(
    tenantId: TenantId | null,
    query: AlertPageQuery,
  ): { alerts: StoredAlert[]; nextSeq: number | null };
  /** The alert log every shard holds alike (WatchAlerts reads and subscribes to it). */
  alertLog(): AlertLog;
  /**
   * Sets the tenant's webhook (`''`: none) once stored; resolves with the new signing secret (hex;
   * `''` for none). Throws MALFORMED_INPUT for a URL that cannot be one.
   */
  setAlertWebhook(tenantId: TenantId, url: string): Promise<string>;
  /** The stored error reports every shard holds alike. */
  errorReports(): ErrorReportStore;
  fleetStats(tenantId: TenantId): Promise<GetFleetStatsResponse>;
  serviceInfo(): GetServiceInfoResponse;
  createProduct(tenantId: TenantId, name: string, description: string): Promise<CreateProductResponse>;
  listProducts(tenantId: TenantId): Product[];
  createDeviceGroup(
    tenantId: TenantId,
    productId: ProductId,
    name: string,
    osFeed: OsFeed,
    updatePolicy: UpdatePolicy,
  ): Promise<DeviceGroup>;
  listDeviceGroups(tenantId: TenantId, productId: ProductId): Promise<DeviceGroup[]>;
  assignDevices(
    tenantId: TenantId,
    deviceGroupId: DeviceGroupId,
    deviceIds: readonly DeviceId[],
  ): Promise<AssignDevicesResponse>;
  createDeployment(tenantId: TenantId, request: DeploymentRequest): Promise<RolloutView>;
  getDeployment(
    tenantId: TenantId,
    deploymentId: DeploymentId,
    includeDevices: boolean,
  ): Promise<RolloutView>;
  controlDeployment(
    tenantId: TenantId,
    deploymentId: DeploymentId,
    action: DeploymentAction,
  ): Promise<RolloutView>;
  /**
   * Watches a deployment: `onChange` receives the current view (without devices) soon after the
   * call, then the newest view after changes (at most once per event-loop turn, in order, never
   * older than a view already delivered). Throws NOT_FOUND synchronously for another tenant's or
   * an unknown deployment. The returned function unsubscribes (idempotent); nothing is delivered
   * after it returns. `onChange` must not throw and should be cheap: it runs in the shard's turn.
   */
  watchDeployment(
    tenantId: TenantId,
    deploymentId: DeploymentId,
    onChange: (view: RolloutView) => void,
  ): () => void;
  uploadImage(tenantId: TenantId, image: ImageUpload): Promise<UploadImageResponse>;
  listImages(tenantId: TenantId): Image[];
}

/** A validated deployment request. */
export interface DeploymentRequest {
  readonly deviceGroupId: DeviceGroupId;
  readonly imageId: ImageId;
  readonly config: RolloutConfig;
}

/** Commands an operator can give a running deployment. */
export const DEPLOYMENT_ACTIONS = ['pause', 'resume', 'cancel', 'retry-failed'] as const;
export type DeploymentAction = (typeof DEPLOYMENT_ACTIONS)[number];

/** A validated image upload. */
export interface ImageUpload {
  readonly kind: 'os' | 'app';
  readonly name: string;
  readonly version: string;
  readonly securityVersion: number;
  readonly content: Uint8Array;
}
