import { Metadata, credentials, status } from '@grpc/grpc-js';
import type { ClientReadableStream, ServiceError } from '@grpc/grpc-js';
import { OperatorServiceClient } from '../../proto/gen/sphere/operator/v1/operator.js';
import type {
  ClaimDevicesResponse,
  CreateTenantResponse,
  GetDeviceResponse,
  GetFleetStatsResponse,
  GetServiceInfoResponse,
  ListAlertsRequest,
  ListAlertsResponse,
  RegisterEndorsementsResponse,
  AssignDevicesResponse,
  CreateDeviceGroupRequest,
  CreateDeviceGroupResponse,
  CreateProductResponse,
  ListDeviceGroupsResponse,
  ListProductsResponse,
  ListImagesResponse,
  UploadImageRequest,
  UploadImageResponse,
  ControlDeploymentResponse,
  CreateDeploymentRequest,
  CreateDeploymentResponse,
  GetDeploymentResponse,
  Rollout,
  Alert,
  ErrorReportFilter,
  QueryErrorReportsResponse,
  SetAlertWebhookResponse,
  WatchAlertsRequest,
} from '../../proto/gen/sphere/operator/v1/operator.js';
import { ERROR_CODE_METADATA } from './errors.js';

/** A failed operator call: gRPC status plus the service's machine-readable code. */
export class OperatorCallError extends Error {
  override readonly name = 'OperatorCallError';
  constructor(
    readonly grpcCode: number,
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** One WatchRollout message: the rollout's state and its place in the stream (1 = the first). */
export interface RolloutUpdate {
  readonly sequence: number;
  readonly rollout: Rollout;
}

/** Options of {@link OperatorClient.watchRollout}. */
export interface WatchRolloutOptions {
  /** Least wall ms between messages (the server clamps it; default 250). */
  readonly minIntervalMs?: number;
  /** Cancels the stream; the iteration then ends without an error. */
  readonly signal?: AbortSignal;
}

/** Promise-based operator client bound to one bearer token. */
export interface WatchAlertsOptions extends Partial<Omit<WatchAlertsRequest, 'afterSeq'>> {
  /** Alerts stored after this seq (default 0: from the oldest kept). */
  readonly afterSeq?: number;
  /** Cancels the stream; the iteration then ends without an error. */
  readonly signal?: AbortSignal;
}

export interface AlertUpdate {
  readonly alert: Alert;
  /** Alerts dropped by the service before this watch reached them. */
  readonly missed: number;
}

export interface OperatorClient {
  createTenant(name: string): Promise<CreateTenantResponse>;
  registerEndorsements(keys: Uint8Array[]): Promise<RegisterEndorsementsResponse>;
  claimDevices(deviceIds: string[]): Promise<ClaimDevicesResponse>;
  getDevice(deviceId: string): Promise<GetDeviceResponse>;
  listAlerts(q: Partial<ListAlertsRequest>): Promise<ListAlertsResponse>;
  getFleetStats(): Promise<GetFleetStatsResponse>;
  getServiceInfo(): Promise<GetServiceInfoResponse>;
  createProduct(name: string, description?: string): Promise<CreateProductResponse>;
  listProducts(): Promise<ListProductsResponse>;
  createDeviceGroup(
    q: Partial<CreateDeviceGroupRequest> & { productId: string; name: string },
  ): Promise<CreateDeviceGroupResponse>;
  listDeviceGroups(productId: string): Promise<ListDeviceGroupsResponse>;
  assignDevices(deviceGroupId: string, deviceIds: string[]): Promise<AssignDevicesResponse>;
  uploadImage(
    image: Omit<UploadImageRequest, 'securityVersion'> & { securityVersion?: number },
  ): Promise<UploadImageResponse>;
  listImages(): Promise<ListImagesResponse>;
  createDeployment(
    d: Partial<CreateDeploymentRequest> &
      Pick<CreateDeploymentRequest, 'deviceGroupId' | 'imageId' | 'waves'>,
  ): Promise<CreateDeploymentResponse>;
  getDeployment(deploymentId: string, includeDevices?: boolean): Promise<GetDeploymentResponse>;
  controlDeployment(deploymentId: string, action: string): Promise<ControlDeploymentResponse>;
  /**
   * Streams a deployment's state: the current one first, then changes, ending after a final
   * state (completed, halted, cancelled). A refusal or a broken stream throws
   * {@link OperatorCallError}. Leaving the loop early (`break`, `return`, a throw) or aborting
   * `signal` cancels the call on the server.
   */
  watchRollout(deploymentId: string, opts?: WatchRolloutOptions): AsyncIterable<RolloutUpdate>;
  /** Streams the tenant's alerts as they are stored (never ends by itself; same rules as watchRollout). */
  watchAlerts(opts?: WatchAlertsOptions): AsyncIterable<AlertUpdate>;
  setAlertWebhook(url: string): Promise<SetAlertWebhookResponse>;
  queryErrorReports(
    groupBy: string[],
    filter?: Partial<ErrorReportFilter>,
    limit?: number,
  ): Promise<QueryErrorReportsResponse>;
  /** The tenant's matching error events as one CSV document. */
  exportErrorReports(filter?: Partial<ErrorReportFilter>): Promise<string>;
  /** The same connection with another token. */
  withToken(token: string): OperatorClient;
  close(): void;
}

export function createOperatorClient(
  address: string,
  token: string,
  raw?: OperatorServiceClient,
): OperatorClient {
  const client =
    raw ??
    new OperatorServiceClient(address, credentials.createInsecure(), {
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
    });
  const md = new Metadata();
  if (token !== '') md.set('authorization', `Bearer ${token}`);
  type Callback<Res> = (e: ServiceError | null, r: Res) => void;
  /** A failed call as an OperatorCallError carrying the service's `sphere-error-code`. */
  const callErrorOf = (e: ServiceError): OperatorCallError => {
    const code = e.metadata?.get(ERROR_CODE_METADATA)[0];
    return new OperatorCallError(
      e.code,
      typeof code === 'string' ? code : 'UNKNOWN',
      e.details || e.message,
      {
        cause: e,
      },
    );
  };
  /** Adapts one generated unary method (invoked by `invoke` with metadata and callback) to a promise. */
  const call = <Res>(invoke: (md: Metadata, cb: Callback<Res>) => unknown): Promise<Res> =>
    new Promise((resolve, reject) =>
      invoke(md, (e, r) => {
        if (e === null) return resolve(r);
        reject(callErrorOf(e));
      }),
    );
  /** Iterates a server stream, mapping each message; see {@link OperatorClient.watchRollout}. */
  async function* streamOf<Msg, Out>(
    open: () => ClientReadableStream<Msg>,
    map: (msg: Msg) => Out,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<Out, void, undefined> {
    // A function, not a narrowed property: the signal can be aborted while we wait.
    const aborted = (): boolean => signal?.aborted === true;
    if (aborted()) return;
    const stream = open();
    const cancel = (): void => stream.cancel();
    signal?.addEventListener('abort', cancel, { once: true });
    try {
      for await (const chunk of stream) yield map(chunk as Msg);
    } catch (e) {
      // Our own cancellation ends the iteration quietly; everything else is the caller's problem.
      if (aborted()) return;
      throw isServiceError(e) ? callErrorOf(e) : e;
    } finally {
      signal?.removeEventListener('abort', cancel);
      // Releases the server's watcher when the consumer stops early; a no-op after the status.
      stream.cancel();
    }
  }
  const missing = (what: string): OperatorCallError =>
    new OperatorCallError(status.INTERNAL, 'INTERNAL', `a stream message carries no ${what}`);
  const filterOf = (f: Partial<ErrorReportFilter> = {}): ErrorReportFilter => ({
    productId: '',
    deviceGroupId: '',
    deviceId: '',
    kind: '',
    component: '',
    version: '',
    sinceMs: 0,
    untilMs: 0,
    ...f,
  });
  return {
    watchRollout: (deploymentId, opts = {}) =>
      streamOf(
        () => client.watchRollout({ deploymentId, minIntervalMs: opts.minIntervalMs ?? 0 }, md),
        (msg) => {
          if (msg.rollout === undefined) throw missing('rollout');
          return { sequence: msg.sequence, rollout: msg.rollout };
        },
        opts.signal,
      ),
    watchAlerts: (opts = {}) =>
      streamOf(
        () =>
          client.watchAlerts(
            {
              afterSeq: opts.afterSeq ?? 0,
              onlyNew: opts.onlyNew ?? false,
              type: opts.type ?? '',
              deviceId: opts.deviceId ?? '',
            },
            md,
          ),
        (msg) => {
          if (msg.alert === undefined) throw missing('alert');
          return { alert: msg.alert, missed: msg.missed };
        },
        opts.signal,
      ),
    setAlertWebhook: (url) =>
      call<SetAlertWebhookResponse>((m, cb) => client.setAlertWebhook({ url }, m, cb)),
    queryErrorReports: (groupBy, filter, limit = 0) =>
      call<QueryErrorReportsResponse>((m, cb) =>
        client.queryErrorReports({ filter: filterOf(filter), groupBy, limit }, m, cb),
      ),
    async exportErrorReports(filter) {
      const decoder = new TextDecoder();
      let csv = '';
      const chunks = streamOf(
        () => client.exportErrorReports({ filter: filterOf(filter) }, md),
        (msg) => msg.csv,
        undefined,
      );
      for await (const bytes of chunks) csv += decoder.decode(bytes, { stream: true });
      return csv + decoder.decode();
    },
    createTenant: (name) => call<CreateTenantResponse>((m, cb) => client.createTenant({ name }, m, cb)),
    registerEndorsements: (keys) =>
      call<RegisterEndorsementsResponse>((m, cb) =>
        client.registerEndorsements({ attestationPublicKeys: keys }, m, cb),
      ),
    claimDevices: (deviceIds) =>
      call<ClaimDevicesResponse>((m, cb) => client.claimDevices({ deviceIds }, m, cb)),
    getDevice: (deviceId) => call<GetDeviceResponse>((m, cb) => client.getDevice({ deviceId }, m, cb)),
    listAlerts: (q) =>
      call<ListAlertsResponse>((m, cb) =>
        client.listAlerts({ sinceMs: 0, limit: 0, pageToken: '', deviceId: '', type: '', ...q }, m, cb),
      ),
    getFleetStats: () => call<GetFleetStatsResponse>((m, cb) => client.getFleetStats({}, m, cb)),
    getServiceInfo: () => call<GetServiceInfoResponse>((m, cb) => client.getServiceInfo({}, m, cb)),
    createProduct: (name, description = '') =>
      call<CreateProductResponse>((m, cb) => client.createProduct({ name, description }, m, cb)),
    listProducts: () => call<ListProductsResponse>((m, cb) => client.listProducts({}, m, cb)),
    createDeviceGroup: (q) =>
      call<CreateDeviceGroupResponse>((m, cb) =>
        client.createDeviceGroup({ osFeed: '', updatePolicy: '', ...q }, m, cb),
      ),
    listDeviceGroups: (productId) =>
      call<ListDeviceGroupsResponse>((m, cb) => client.listDeviceGroups({ productId }, m, cb)),
    uploadImage: (image) =>
      call<UploadImageResponse>((m, cb) => client.uploadImage({ securityVersion: 0, ...image }, m, cb)),
    listImages: () => call<ListImagesResponse>((m, cb) => client.listImages({}, m, cb)),
    createDeployment: (d) =>
      call<CreateDeploymentResponse>((m, cb) =>
        client.createDeployment(
          {
            successThreshold: 1,
            errorCount: 0,
            errorShare: 0,
            autoRollback: false,
            pauseBetweenWavesMs: 0,
            ...d,
          },
          m,
          cb,
        ),
      ),
    getDeployment: (deploymentId, includeDevices = false) =>
      call<GetDeploymentResponse>((m, cb) => client.getDeployment({ deploymentId, includeDevices }, m, cb)),
    controlDeployment: (deploymentId, action) =>
      call<ControlDeploymentResponse>((m, cb) => client.controlDeployment({ deploymentId, action }, m, cb)),
    assignDevices: (deviceGroupId, deviceIds) =>
      call<AssignDevicesResponse>((m, cb) => client.assignDevices({ deviceGroupId, deviceIds }, m, cb)),
    withToken: (t) => createOperatorClient(address, t, client),
    close: () => client.close(),
  };
}

function isServiceError(e: unknown): e is ServiceError {
  return e instanceof Error && typeof (e as Partial<ServiceError>).code === 'number' && 'metadata' in e;
}
