import { Metadata, credentials } from '@grpc/grpc-js';
import type { ServiceError } from '@grpc/grpc-js';
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

/** Promise-based operator client bound to one bearer token. */
export interface OperatorClient {
  createTenant(name: string): Promise<CreateTenantResponse>;
  registerEndorsements(keys: Uint8Array[]): Promise<RegisterEndorsementsResponse>;
  claimDevices(deviceIds: string[]): Promise<ClaimDevicesResponse>;
  getDevice(deviceId: string): Promise<GetDeviceResponse>;
  listAlerts(q: Partial<ListAlertsRequest>): Promise<ListAlertsResponse>;
  getFleetStats(): Promise<GetFleetStatsResponse>;
  getServiceInfo(): Promise<GetServiceInfoResponse>;
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
  type Fn<Req, Res> = (req: Req, md: Metadata, cb: (e: ServiceError | null, r: Res) => void) => unknown;
  const call = <Req, Res>(fn: Fn<Req, Res>, req: Req): Promise<Res> =>
    new Promise((resolve, reject) =>
      fn.call(client, req, md, (e, r) => {
        if (e === null) return resolve(r);
        const code = e.metadata?.get(ERROR_CODE_METADATA)[0];
        reject(
          new OperatorCallError(e.code, typeof code === 'string' ? code : 'UNKNOWN', e.details || e.message, {
            cause: e,
          }),
        );
      }),
    );
  return {
    createTenant: (name) => call(client.createTenant as Fn<object, CreateTenantResponse>, { name }),
    registerEndorsements: (keys) =>
      call(client.registerEndorsements as Fn<object, RegisterEndorsementsResponse>, {
        attestationPublicKeys: keys,
      }),
    claimDevices: (deviceIds) => call(client.claimDevices as Fn<object, ClaimDevicesResponse>, { deviceIds }),
    getDevice: (deviceId) => call(client.getDevice as Fn<object, GetDeviceResponse>, { deviceId }),
    listAlerts: (q) =>
      call(client.listAlerts as Fn<object, ListAlertsResponse>, {
        sinceMs: 0,
        limit: 0,
        pageToken: '',
        deviceId: '',
        type: '',
        ...q,
      }),
    getFleetStats: () => call(client.getFleetStats as Fn<object, GetFleetStatsResponse>, {}),
    getServiceInfo: () => call(client.getServiceInfo as Fn<object, GetServiceInfoResponse>, {}),
    withToken: (t) => createOperatorClient(address, t, client),
    close: () => client.close(),
  };
}
