import { setMaxListeners } from 'node:events';
import { Metadata, Server, ServerCredentials, status } from '@grpc/grpc-js';
import type {
  sendUnaryData,
  ServerUnaryCall,
  ServerWritableStream,
  ServiceDefinition,
  StatusObject,
  UntypedHandleCall,
} from '@grpc/grpc-js';
import {
  ClaimDevicesRequest,
  CreateTenantRequest,
  GetDeviceRequest,
  GetFleetStatsRequest,
  GetServiceInfoRequest,
  ListAlertsRequest,
  OperatorServiceService,
  RegisterEndorsementsRequest,
  AssignDevicesRequest,
  CreateDeviceGroupRequest,
  CreateProductRequest,
  ListDeviceGroupsRequest,
  ListProductsRequest,
  ListImagesRequest,
  UploadImageRequest,
  ControlDeploymentRequest,
  CreateDeploymentRequest,
  GetDeploymentRequest,
  WatchRolloutRequest,
  WatchAlertsRequest,
  SetAlertWebhookRequest,
  QueryErrorReportsRequest,
  ExportErrorReportsRequest,
} from '../../proto/gen/sphere/operator/v1/operator.js';
import type {
  Alert as AlertMessage,
  ErrorReportFilter,
  ExportErrorReportsResponse,
  QueryErrorReportsResponse,
  Rollout as RolloutView,
  WatchAlertsResponse,
  WatchRolloutResponse,
} from '../../proto/gen/sphere/operator/v1/operator.js';
import {
  AGGREGATE_CSV_COLUMNS,
  ERROR_EVENT_KINDS,
  errorEventsCsvChunks,
  isErrorEventKind,
} from '../error-reports/index.js';
import type { ErrorEventFilter, GroupByDimension } from '../error-reports/index.js';
import type { Alert } from '../registry/index.js';
import { AlertCursor } from './alert-watch.js';
import {
  decodeStrict,
  parseDeploymentId,
  parseDeviceGroupId,
  parseDeviceId,
  parseImageId,
  parseProductId,
  PUBLIC_KEY_BYTES,
} from '../../proto/codec/index.js';
import { OS_FEEDS, UPDATE_POLICIES } from '../registry/index.js';
import type { OsFeed, UpdatePolicy } from '../registry/index.js';
import type {
  DeploymentId,
  DeviceGroupId,
  DeviceId,
  MessageFns,
  ProductId,
  TenantId,
} from '../../proto/codec/index.js';
import { compileRolloutConfig } from '../rollouts/index.js';
import type { ServiceMetrics } from '../metrics/index.js';
import { DEPLOYMENT_ACTIONS } from './backend.js';
import type { Caller, DeploymentAction, OperatorBackend } from './backend.js';
import { ERROR_CODE_METADATA, OPERATOR_ERRORS, OperatorError, grpcStatusOf } from './errors.js';
import { WatchPump, isWatchFinalState, watchIntervalOf } from './watch.js';
import type { WatchSink } from './watch.js';

/** Largest request accepted (bytes); bigger ones get PAYLOAD_TOO_LARGE. */
export const MAX_REQUEST_BYTES = 4 * 1024 * 1024;
/** Largest image accepted by UploadImage (the request must stay under MAX_REQUEST_BYTES). */
export const MAX_IMAGE_BYTES = 4 * 1024 * 1024 - 64 * 1024;
const IMAGE_NAME = /^[a-z0-9][a-z0-9-]{0,63}$/;
const IMAGE_VERSION = /^[0-9A-Za-z][0-9A-Za-z.+-]{0,31}$/;

/** Largest batch per ClaimDevices / RegisterEndorsements call. */
export const MAX_BATCH = 20_000;

type Method = keyof typeof OperatorServiceService;
/** Server-streaming methods; every other method is unary. */
type StreamMethod = 'watchRollout' | 'watchAlerts' | 'exportErrorReports';
type UnaryMethod = Exclude<Method, StreamMethod>;

/** Request types per method, for strict decoding. */
const REQUESTS: { readonly [M in Method]: MessageFns<object> } = {
  createTenant: CreateTenantRequest,
  registerEndorsements: RegisterEndorsementsRequest,
  claimDevices: ClaimDevicesRequest,
  getDevice: GetDeviceRequest,
  listAlerts: ListAlertsRequest,
  getFleetStats: GetFleetStatsRequest,
  getServiceInfo: GetServiceInfoRequest,
  createProduct: CreateProductRequest,
  listProducts: ListProductsRequest,
  createDeviceGroup: CreateDeviceGroupRequest,
  listDeviceGroups: ListDeviceGroupsRequest,
  assignDevices: AssignDevicesRequest,
  uploadImage: UploadImageRequest,
  listImages: ListImagesRequest,
  createDeployment: CreateDeploymentRequest,
  getDeployment: GetDeploymentRequest,
  controlDeployment: ControlDeploymentRequest,
  watchRollout: WatchRolloutRequest,
  watchAlerts: WatchAlertsRequest,
  setAlertWebhook: SetAlertWebhookRequest,
  queryErrorReports: QueryErrorReportsRequest,
  exportErrorReports: ExportErrorReportsRequest,
};

/** A request that failed to decode travels to the handler as this, never as an exception. */
interface Undecodable {
  readonly undecodable: OperatorError;
}

function isUndecodable(x: unknown): x is Undecodable {
  return typeof x === 'object' && x !== null && 'undecodable' in x;
}

const AUTH: { readonly [M in Method]: 'admin' | 'tenant' | 'public' } = {
  createTenant: 'admin',
  registerEndorsements: 'admin',
  claimDevices: 'tenant',
  getDevice: 'tenant',
  listAlerts: 'tenant',
  getFleetStats: 'tenant',
  getServiceInfo: 'public',
  createProduct: 'tenant',
  listProducts: 'tenant',
  createDeviceGroup: 'tenant',
  listDeviceGroups: 'tenant',
  assignDevices: 'tenant',
  uploadImage: 'tenant',
  listImages: 'tenant',
  createDeployment: 'tenant',
  getDeployment: 'tenant',
  controlDeployment: 'tenant',
  watchRollout: 'tenant',
  watchAlerts: 'tenant',
  setAlertWebhook: 'tenant',
  queryErrorReports: 'tenant',
  exportErrorReports: 'tenant',
};

function deviceIdOf(s: string, field: string): DeviceId {
  const id = parseDeviceId(s);
  if (id === null) {
    throw new OperatorError(
      'MALFORMED_INPUT',
      `${field} must be 128 lowercase hex characters, got ${JSON.stringify(s.slice(0, 20))}${s.length > 20 ? '…' : ''} (${s.length} chars)`,
    );
  }
  return id;
}

/** Parses a prefixed identifier field (`p-`, `g-`, `d-`, `i-` + 16 hex) or refuses naming the field. */
function idOf<T>(s: string, parse: (s: string) => T | null, field: string, prefix: string): T {
  const id = parse(s);
  if (id === null) {
    throw new OperatorError(
      'MALFORMED_INPUT',
      `${field} must look like "${prefix}" + 16 hex characters, got ${JSON.stringify(s.slice(0, 24))}`,
    );
  }
  return id;
}

const productIdOf = (s: string): ProductId => idOf(s, parseProductId, 'product_id', 'p-');
const deploymentIdOf = (s: string): DeploymentId => idOf(s, parseDeploymentId, 'deployment_id', 'd-');
const deviceGroupIdOf = (s: string): DeviceGroupId => idOf(s, parseDeviceGroupId, 'device_group_id', 'g-');

/** A name field: trimmed, 1 to 128 characters. */
function nameOf(s: string, field: string): string {
  const name = s.trim();
  if (name.length < 1 || name.length > 128)
    throw new OperatorError('MALFORMED_INPUT', `${field} must be 1 to 128 characters`);
  return name;
}

function oneOf<T extends string>(s: string, allowed: readonly T[], fallback: T, field: string): T {
  if (s === '') return fallback;
  if ((allowed as readonly string[]).includes(s)) return s as T;
  throw new OperatorError(
    'MALFORMED_INPUT',
    `${field} must be one of ${allowed.join(', ')}, got ${JSON.stringify(s.slice(0, 24))}`,
  );
}

/** Whose alerts a caller reads: a tenant its own, the admin those no tenant owns (`null`). */
function alertScopeOf(caller: Caller): TenantId | null {
  return caller.kind === 'tenant' ? caller.tenantId : null;
}

function tenantOf(caller: Caller): Caller & { kind: 'tenant' } {
  if (caller.kind !== 'tenant')
    throw new OperatorError('FORBIDDEN', 'this call needs a tenant API token, not the admin token');
  return caller;
}

/**
 * The operator gRPC service. Requests are decoded strictly (size, unknown or mistyped fields,
 * truncation) by wrapped deserializers that never throw; every call is authenticated from
 * `authorization: Bearer <token>`, validated, answered with a typed error on failure
 * (gRPC status + `sphere-error-code` metadata) and counted.
 */
export function operatorImplementation(
  backend: OperatorBackend,
  metrics: ServiceMetrics,
  opts: { readonly shutdown?: AbortSignal } = {},
) {
  const handlers: Record<UnaryMethod, (req: never, caller: Caller) => Promise<object> | object> = {
    createTenant: (req: CreateTenantRequest) => {
      const name = req.name.trim();
      if (name.length < 1 || name.length > 128)
        throw new OperatorError('MALFORMED_INPUT', 'name must be 1 to 128 characters');
      return backend.createTenant(name);
    },
    registerEndorsements: (req: RegisterEndorsementsRequest) => {
      const keys = req.attestationPublicKeys;
      if (keys.length === 0 || keys.length > MAX_BATCH) {
        throw new OperatorError(
          'MALFORMED_INPUT',
          `send 1 to ${MAX_BATCH} keys per call, got ${keys.length}`,
        );
      }
      keys.forEach((k, i) => {
        if (k.length !== PUBLIC_KEY_BYTES || k[0] !== 4) {
          throw new OperatorError(
            'MALFORMED_INPUT',
            `attestation_public_keys[${i}] must be a 65-byte uncompressed P-256 point`,
          );
        }
      });
      return backend.registerEndorsements(keys);
    },
    claimDevices: (req: ClaimDevicesRequest, caller) => {
      const { tenantId } = tenantOf(caller);
      if (req.deviceIds.length === 0 || req.deviceIds.length > MAX_BATCH) {
        throw new OperatorError(
          'MALFORMED_INPUT',
          `send 1 to ${MAX_BATCH} device IDs per call, got ${req.deviceIds.length}`,
        );
      }
      return backend.claimDevices(
        tenantId,
        req.deviceIds.map((s, i) => deviceIdOf(s, `device_ids[${i}]`)),
      );
    },
    getDevice: async (req: GetDeviceRequest, caller) => {
      const { tenantId } = tenantOf(caller);
      const device = await backend.getDevice(tenantId, deviceIdOf(req.deviceId, 'device_id'));
      if (device === null) throw new OperatorError('NOT_FOUND', 'no such device in your tenant');
      return { device };
    },
    listAlerts: (req: ListAlertsRequest, caller) => {
      const tenantId = alertScopeOf(caller);
      if (req.limit > 1000) throw new OperatorError('MALFORMED_INPUT', 'limit must be at most 1000');
      let afterSeq = 0;
      if (req.pageToken !== '') {
        afterSeq = Number.parseInt(req.pageToken, 36);
        if (!/^[0-9a-z]{1,12}$/.test(req.pageToken) || !Number.isSafeInteger(afterSeq)) {
          throw new OperatorError('MALFORMED_INPUT', 'page_token is not one this service returned');
        }
      }
      if (req.deviceId !== '') deviceIdOf(req.deviceId, 'device_id');
      const page = backend.listAlerts(tenantId, {
        sinceMs: req.sinceMs,
        afterSeq,
        limit: req.limit === 0 ? 100 : req.limit,
        ...(req.deviceId !== '' ? { deviceId: req.deviceId } : {}),
        ...(req.type !== '' ? { type: req.type } : {}),
      });
      return {
        alerts: page.alerts.map(alertMessage),
        nextPageToken: page.nextSeq === null ? '' : page.nextSeq.toString(36),
      };
    },
    getFleetStats: (_req: GetFleetStatsRequest, caller) => backend.fleetStats(tenantOf(caller).tenantId),
    getServiceInfo: () => backend.serviceInfo(),
    createProduct: (req: CreateProductRequest, caller) => {
      if (req.description.length > 1024)
        throw new OperatorError('MALFORMED_INPUT', 'description must be at most 1024 characters');
      return backend.createProduct(tenantOf(caller).tenantId, nameOf(req.name, 'name'), req.description);
    },
    listProducts: (_req: ListProductsRequest, caller) => ({
      products: backend.listProducts(tenantOf(caller).tenantId),
    }),
    createDeviceGroup: async (req: CreateDeviceGroupRequest, caller) => ({
      deviceGroup: await backend.createDeviceGroup(
        tenantOf(caller).tenantId,
        productIdOf(req.productId),
        nameOf(req.name, 'name'),
        oneOf<OsFeed>(req.osFeed, OS_FEEDS, 'RETAIL', 'os_feed'),
        oneOf<UpdatePolicy>(req.updatePolicy, UPDATE_POLICIES, 'ACCEPT_ALL', 'update_policy'),
      ),
    }),
    listDeviceGroups: async (req: ListDeviceGroupsRequest, caller) => ({
      deviceGroups: await backend.listDeviceGroups(tenantOf(caller).tenantId, productIdOf(req.productId)),
    }),
    uploadImage: (req: UploadImageRequest, caller) => {
      const { tenantId } = tenantOf(caller);
      const kind = oneOf<'os' | 'app'>(req.kind, ['os', 'app'], 'app', 'kind');
      if (!IMAGE_NAME.test(req.name)) {
        throw new OperatorError(
          'MALFORMED_INPUT',
          'name must be 1 to 64 characters of a-z, 0-9 and "-", starting with a letter or digit',
        );
      }
      if (!IMAGE_VERSION.test(req.version)) {
        throw new OperatorError(
          'MALFORMED_INPUT',
          'version must be 1 to 32 characters of A-Z, a-z, 0-9, ".", "+" and "-"',
        );
      }
      if (req.content.length === 0 || req.content.length > MAX_IMAGE_BYTES) {
        throw new OperatorError(
          'MALFORMED_INPUT',
          `content must be 1 to ${MAX_IMAGE_BYTES} bytes, got ${req.content.length}`,
        );
      }
      return backend.uploadImage(tenantId, {
        kind,
        name: req.name,
        version: req.version,
        securityVersion: req.securityVersion,
        content: req.content,
      });
    },
    listImages: (_req: ListImagesRequest, caller) => ({
      images: backend.listImages(tenantOf(caller).tenantId),
    }),
    createDeployment: async (req: CreateDeploymentRequest, caller) => {
      const { tenantId } = tenantOf(caller);
      const compiled = compileRolloutConfig({
        waves: req.waves.map((w) =>
          w.size?.$case === 'count' ? { count: w.size.value } : { share: w.size?.value ?? 0 },
        ),
        successThreshold: req.successThreshold,
        errorThreshold: {
          ...(req.errorCount > 0 ? { count: req.errorCount } : {}),
          ...(req.errorShare > 0 ? { share: req.errorShare } : {}),
        },
        autoRollback: req.autoRollback,
        pauseBetweenWavesMs: req.pauseBetweenWavesMs,
      });
      if (!compiled.ok)
        throw new OperatorError('MALFORMED_INPUT', `${compiled.error.field}: ${compiled.error.message}`);
      const imageId = idOf(req.imageId, parseImageId, 'image_id', 'i-');
      return {
        rollout: await backend.createDeployment(tenantId, {
          deviceGroupId: deviceGroupIdOf(req.deviceGroupId),
          imageId,
          config: compiled.value,
        }),
      };
    },
    getDeployment: async (req: GetDeploymentRequest, caller) => ({
      rollout: await backend.getDeployment(
        tenantOf(caller).tenantId,
        deploymentIdOf(req.deploymentId),
        req.includeDevices,
      ),
    }),
    controlDeployment: async (req: ControlDeploymentRequest, caller) => ({
      rollout: await backend.controlDeployment(
        tenantOf(caller).tenantId,
        deploymentIdOf(req.deploymentId),
        oneOf<DeploymentAction>(req.action, DEPLOYMENT_ACTIONS, 'pause', 'action'),
      ),
    }),
    setAlertWebhook: async (req: SetAlertWebhookRequest, caller) => {
      return { secret: await backend.setAlertWebhook(tenantOf(caller).tenantId, req.url) };
    },
    queryErrorReports: (req: QueryErrorReportsRequest, caller) => {
      const { tenantId } = tenantOf(caller);
      const filter = errorFilterOf(tenantId, req.filter);
      if (req.limit > 10_000) throw new OperatorError('MALFORMED_INPUT', 'limit must be at most 10000');
      const groupBy = req.groupBy.map((name, i) => {
        const d = GROUP_BY_NAMES[name];
        if (d === undefined || !Object.hasOwn(GROUP_BY_NAMES, name))
          throw new OperatorError(
            'MALFORMED_INPUT',
            `group_by[${i}] must be one of ${Object.keys(GROUP_BY_NAMES).join(', ')}, got ${JSON.stringify(name.slice(0, 24))}`,
          );
        return d;
      });
      const store = backend.errorReports();
      const rows = store.aggregate({ ...filter, groupBy });
      const limit = req.limit === 0 ? 1000 : req.limit;
      const totals = store.totals(tenantId);
      const apiName = (d: GroupByDimension): string => (d === 'exitCode' ? 'exit_code' : d);
      return {
        rows: rows.slice(0, limit).map((r) => ({
          key: Object.fromEntries(Object.entries(r.key).map(([d, v]) => [apiName(d as GroupByDimension), v])),
          events: r.events,
          devices: r.devices,
          reports: r.reports,
        })),
        truncated: rows.length > limit,
        totalReports: totals.reports,
        totalEvents: totals.events,
        droppedEvents: totals.droppedEvents,
        reportingDevices: totals.devices,
      } satisfies QueryErrorReportsResponse;
    },
    assignDevices: (req: AssignDevicesRequest, caller) => {
      const { tenantId } = tenantOf(caller);
      if (req.deviceIds.length === 0 || req.deviceIds.length > MAX_BATCH) {
        throw new OperatorError(
          'MALFORMED_INPUT',
          `send 1 to ${MAX_BATCH} device IDs per call, got ${req.deviceIds.length}`,
        );
      }
      return backend.assignDevices(
        tenantId,
        deviceGroupIdOf(req.deviceGroupId),
        req.deviceIds.map((s, i) => deviceIdOf(s, `device_ids[${i}]`)),
      );
    },
  };

  const impl: Record<string, UntypedHandleCall> = {};
  for (const method of Object.keys(handlers) as UnaryMethod[]) {
    impl[method] = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
      const started = performance.now();
      const finish = (code: string, err: OperatorError | null, value?: object) => {
        metrics.grpcRequests.inc({ method, code });
        metrics.requestLatency.observe(
          { transport: 'grpc', op: method },
          (performance.now() - started) / 1000,
        );
        if (err === null) return callback(null, value);
        callback(errorStatus(err));
      };
      const run = async (): Promise<object> => {
        const req = call.request;
        if (isUndecodable(req)) throw req.undecodable;
        const caller = authenticate(backend, call.metadata, AUTH[method]);
        return await handlers[method](req as never, caller);
      };
      run().then(
        (value) => finish('OK', null, value),
        (e: unknown) => {
          const err = operatorErrorOf(e, method);
          finish(err.code, err);
        },
      );
    };
  }
  impl['watchRollout'] = watchRolloutHandler(backend, metrics, opts.shutdown);
  impl['watchAlerts'] = watchAlertsHandler(backend, metrics, opts.shutdown);
  impl['exportErrorReports'] = exportErrorReportsHandler(backend, metrics, opts.shutdown);
  return impl;
}

/** An OperatorError as is; anything else is a bug, logged here and answered as INTERNAL. */
function operatorErrorOf(e: unknown, method: Method): OperatorError {
  if (e instanceof OperatorError) return e;
  console.error(`[operator-api] ${method} failed:`, e);
  return new OperatorError('INTERNAL', 'internal error; the shard log has details', { cause: e });
}

/** The status a refusal is answered with: gRPC code, the message, `sphere-error-code` metadata. */
function errorStatus(err: OperatorError): Partial<StatusObject> & { code: status } {
  const md = new Metadata();
  md.set(ERROR_CODE_METADATA, err.code);
  return { code: grpcStatusOf(err.code), details: err.message, metadata: md };
}

/** What a stream's body can do with its call. */
interface StreamOut<T> {
  /** Writes one message; `false` when the transport's buffer is full (wait for `onDrain`). */
  write(msg: T): boolean;
  onDrain(resume: () => void): void;
  /** Ends the stream with status OK. */
  end(): void;
  /** Ends the stream with a typed error status. */
  fail(err: OperatorError): void;
}

/**
 * A server stream: validated and authenticated like a unary call (a refusal is the stream's
 * status, with `sphere-error-code`), then `start` runs it. Every way the stream can end (the body
 * ends or fails it, client cancel, stream error, shard shutdown) goes through one `finish`, which
 * calls what `start` returned (to unsubscribe) and counts the call once; `requestLatency`
 * measures the time to the first message.
 */
function streamHandler<Req, Res>(
  method: StreamMethod,
  backend: OperatorBackend,
  metrics: ServiceMetrics,
  shutdown: AbortSignal | undefined,
  start: (req: Req, caller: Caller, out: StreamOut<Res>) => () => void,
) {
  return (call: ServerWritableStream<unknown, Res>): void => {
    const started = performance.now();
    let observed = false;
    const observeLatency = (): void => {
      if (observed) return;
      observed = true;
      metrics.requestLatency.observe({ transport: 'grpc', op: method }, (performance.now() - started) / 1000);
    };
    let stop = (): void => undefined;
    let finished = false;
    /** Ends the stream once; `err` becomes the stream's status, `null` leaves the stream to the caller. */
    const finish = (code: string, err: OperatorError | null): boolean => {
      if (finished) return false;
      finished = true;
      stop();
      shutdown?.removeEventListener('abort', onShutdown);
      metrics.grpcRequests.inc({ method, code });
      if (err !== null) {
        observeLatency();
        // grpc-js turns an 'error' event on a server stream into its final status.
        call.emit('error', errorStatus(err));
      }
      return true;
    };
    const onShutdown = (): void => {
      finish('UNAVAILABLE', new OperatorError('UNAVAILABLE', 'the shard is shutting down; call again'));
    };
    call.on('cancelled', () => finish('CANCELLED', null));
    // A failed write; grpc-js already ends the call with a status of its own.
    call.on('error', () => finish('INTERNAL', null));
    // Destroyed some other way: whatever happened, the body must not outlive the stream.
    call.on('close', () => finish('CANCELLED', null));
    if (call.cancelled) {
      finish('CANCELLED', null);
      return;
    }
    const out: StreamOut<Res> = {
      write: (msg) => {
        if (finished) return false;
        observeLatency();
        return call.write(msg);
      },
      onDrain: (resume) => call.once('drain', resume),
      end: () => {
        if (finish('OK', null)) call.end();
      },
      fail: (err) => void finish(err.code, err),
    };
    try {
      const req = call.request;
      if (isUndecodable(req)) throw req.undecodable;
      const caller = authenticate(backend, call.metadata, AUTH[method]);
      if (shutdown?.aborted === true)
        throw new OperatorError('UNAVAILABLE', 'the shard is shutting down; call again');
      const unsubscribe = start(req as Req, caller, out);
      // A body that finished synchronously has already run `stop` (the no-op): run its own now.
      if (finished) unsubscribe();
      else {
        stop = unsubscribe;
        shutdown?.addEventListener('abort', onShutdown, { once: true });
        // Headers now: the caller knows the stream is established before a first message (a
        // watch of alerts may wait long for one).
        call.sendMetadata(new Metadata());
      }
    } catch (e) {
      const err = operatorErrorOf(e, method);
      finish(err.code, err);
    }
  };
}

/** WatchRollout: a {@link WatchPump} feeds the stream from the deployment's watcher. */
function watchRolloutHandler(backend: OperatorBackend, metrics: ServiceMetrics, shutdown?: AbortSignal) {
  return streamHandler<WatchRolloutRequest, WatchRolloutResponse>(
    'watchRollout',
    backend,
    metrics,
    shutdown,
    (req, caller, out) => {
      const { tenantId } = tenantOf(caller);
      const id = deploymentIdOf(req.deploymentId);
      const sink: WatchSink<RolloutView> = {
        write: (rollout, sequence) => out.write({ sequence, rollout }),
        onDrain: (resume) => out.onDrain(resume),
        end: () => out.end(),
      };
      const pump = new WatchPump<RolloutView>(sink, {
        minIntervalMs: watchIntervalOf(req.minIntervalMs),
        isFinal: (view) => isWatchFinalState(view.state),
      });
      const unsubscribe = backend.watchDeployment(tenantId, id, (view) => pump.offer(view));
      return () => {
        unsubscribe();
        pump.stop();
      };
    },
  );
}

/**
 * WatchAlerts: an {@link AlertCursor} over the tenant's alert log, woken by each new alert. The
 * log is the buffer: a slow reader costs the shard a position, never a queue.
 */
function watchAlertsHandler(backend: OperatorBackend, metrics: ServiceMetrics, shutdown?: AbortSignal) {
  return streamHandler<WatchAlertsRequest, WatchAlertsResponse>(
    'watchAlerts',
    backend,
    metrics,
    shutdown,
    (req, caller, out) => {
      const tenantId = alertScopeOf(caller);
      if (req.deviceId !== '') deviceIdOf(req.deviceId, 'device_id');
      if (req.afterSeq > Number.MAX_SAFE_INTEGER)
        throw new OperatorError('MALFORMED_INPUT', 'after_seq is larger than any alert seq');
      const cursor = new AlertCursor(backend.alertLog(), tenantId, {
        afterSeq: req.onlyNew ? Infinity : req.afterSeq,
        ...(req.type !== '' ? { type: req.type } : {}),
        ...(req.deviceId !== '' ? { deviceId: req.deviceId } : {}),
        write: (alert, missed) => out.write({ alert: alertMessage(alert), missed }),
        onDrain: (resume) => out.onDrain(resume),
      });
      return () => cursor.stop();
    },
  );
}

/** ExportErrorReports: the CSV in pieces, pulled as the transport takes them. */
function exportErrorReportsHandler(
  backend: OperatorBackend,
  metrics: ServiceMetrics,
  shutdown?: AbortSignal,
) {
  return streamHandler<ExportErrorReportsRequest, ExportErrorReportsResponse>(
    'exportErrorReports',
    backend,
    metrics,
    shutdown,
    (req, caller, out) => {
      const filter = errorFilterOf(tenantOf(caller).tenantId, req.filter);
      const chunks = errorEventsCsvChunks(backend.errorReports().events(filter));
      const encoder = new TextEncoder();
      let stopped = false;
      const pump = (): void => {
        if (stopped) return;
        for (;;) {
          const next = chunks.next();
          if (next.done === true) return out.end();
          if (!out.write({ csv: encoder.encode(next.value) })) return out.onDrain(pump);
        }
      };
      // Not in this turn: the first pieces are written once the handler has returned.
      setImmediate(pump);
      return () => {
        stopped = true;
      };
    },
  );
}

/** An alert as the operator API shows it. */
function alertMessage(a: Alert): AlertMessage {
  return {
    id: a.id,
    seq: a.seq,
    type: a.type,
    severity: a.severity,
    deviceId: a.deviceId,
    atMs: a.atMs,
    message: a.message,
    evidence: { ...a.evidence },
  };
}

/** A validated error-report filter of the caller's tenant. */
function errorFilterOf(tenantId: TenantId, f: ErrorReportFilter | undefined): ErrorEventFilter {
  if (f === undefined) return { tenantId };
  if (f.kind !== '' && !isErrorEventKind(f.kind))
    throw new OperatorError('MALFORMED_INPUT', `kind must be one of ${ERROR_EVENT_KINDS.join(', ')}`);
  if (f.sinceMs < 0 || f.untilMs < 0)
    throw new OperatorError('MALFORMED_INPUT', 'since_ms and until_ms must be >= 0');
  if (f.component.length > 128 || f.version.length > 128)
    throw new OperatorError('MALFORMED_INPUT', 'component and version are at most 128 characters');
  return {
    tenantId,
    ...(f.productId !== '' ? { productId: productIdOf(f.productId) } : {}),
    ...(f.deviceGroupId !== '' ? { groupId: deviceGroupIdOf(f.deviceGroupId) } : {}),
    ...(f.deviceId !== '' ? { deviceId: deviceIdOf(f.deviceId, 'filter.device_id') } : {}),
    ...(f.kind !== '' ? { kind: f.kind } : {}),
    ...(f.component !== '' ? { component: f.component } : {}),
    ...(f.version !== '' ? { version: f.version } : {}),
    ...(f.sinceMs > 0 ? { sinceMs: f.sinceMs } : {}),
    ...(f.untilMs > 0 ? { untilMs: f.untilMs } : {}),
  };
}

/** group_by names as the API spells them (the aggregate CSV's column names), to the store's dimensions. */
const GROUP_BY_NAMES: Readonly<Record<string, GroupByDimension>> = Object.fromEntries(
  Object.entries(AGGREGATE_CSV_COLUMNS).map(([dimension, name]) => [name, dimension as GroupByDimension]),
);

function authenticate(backend: OperatorBackend, md: Metadata, need: 'admin' | 'tenant' | 'public'): Caller {
  if (need === 'public') return { kind: 'admin' };
  const header = md.get('authorization')[0];
  const token = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7) : '';
  if (token === '')
    throw new OperatorError('UNAUTHENTICATED', 'missing "authorization: Bearer <token>" metadata');
  const caller = backend.authenticate(token);
  if (caller === null) throw new OperatorError('UNAUTHENTICATED', 'token is not valid for this service');
  if (need === 'admin' && caller.kind !== 'admin')
    throw new OperatorError('FORBIDDEN', 'this call needs the service admin token');
  return caller;
}

/** The generated service definition with strict, never-throwing request deserializers. */
export function defensiveDefinition(): ServiceDefinition {
  const def: Record<string, unknown> = {};
  for (const [method, d] of Object.entries(OperatorServiceService)) {
    const fns = REQUESTS[method as Method];
    def[method] = {
      ...d,
      requestDeserialize: (buf: Buffer): unknown => {
        const decoded = decodeStrict(fns, buf, MAX_REQUEST_BYTES, `${method} request`);
        if (decoded.ok) return decoded.value;
        const code =
          decoded.error.kind === 'too-large'
            ? OPERATOR_ERRORS.PAYLOAD_TOO_LARGE
            : OPERATOR_ERRORS.MALFORMED_INPUT;
        return { undecodable: new OperatorError(code, decoded.error.reason) } satisfies Undecodable;
      },
    };
  }
  return def as ServiceDefinition;
}

export interface OperatorServer {
  readonly port: number;
  readonly address: string;
  close(): Promise<void>;
}

/** Starts the operator API on `host:port` (port 0 picks a free one). */
export async function startOperatorServer(opts: {
  host?: string;
  port: number;
  backend: OperatorBackend;
  metrics: ServiceMetrics;
}): Promise<OperatorServer> {
  const host = opts.host ?? '127.0.0.1';
  // gRPC's own limit sits above ours so that oversize requests get our typed, counted answer.
  const server = new Server({ 'grpc.max_receive_message_length': MAX_REQUEST_BYTES * 2 });
  // Aborted on close: open WatchRollout streams end with UNAVAILABLE instead of holding the
  // graceful shutdown until it is forced.
  const shutdown = new AbortController();
  // One listener per open watch; Node would warn of a leak past 10 (they are removed as watches end).
  setMaxListeners(0, shutdown.signal);
  server.addService(
    defensiveDefinition(),
    operatorImplementation(opts.backend, opts.metrics, { shutdown: shutdown.signal }),
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${opts.port}`, ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  return {
    port,
    address: `${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        shutdown.abort();
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}

export { status };
