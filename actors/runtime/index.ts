/**
 * Front door of the actor runtime: clocks, deterministic RNG, results, metrics
 * port, actor system and messaging transports. Other folders import only this.
 */
export type {
  Clock,
  ManualClock,
  ScaledClock,
  ScaledClockOptions,
  TimerHandle,
  WallTimers,
} from './clock.js';
export { createManualClock, createScaledClock, systemWall } from './clock.js';

export type { Rng } from './rng.js';
export { createRng } from './rng.js';

export type { ErrorInfo, Result } from './result.js';
export { err, ok } from './result.js';

export type { Counter, Gauge, Histogram, HistogramOptions, Labels, Meter, MetricOptions } from './meter.js';
export { MetricConflictError, noopMeter } from './meter.js';
export type { MetricsServer, PromMeter, PromMeterOptions } from './prometheus.js';
export { createPromMeter } from './prometheus.js';

export { OverflowPolicy } from './mailbox.js';
export type {
  ActorContext,
  ActorDefinition,
  ActorFailure,
  ActorHandle,
  ActorRef,
  ActorSystemOptions,
  ActorSystemStats,
  MailboxOptions,
  SupervisionOptions,
  TimerId,
} from './actor.js';
export {
  ActorInitError,
  ActorNameTakenError,
  ActorStatus,
  ActorSystem,
  ActorSystemError,
  ActorSystemShutdownError,
  DropReason,
} from './actor.js';

export type { Handler, InboundMessage, ServeOptions, Subscription, Transport } from './transport.js';
export { DEFAULT_SERVE_CONCURRENCY, TransportError, TransportErrorCode } from './transport.js';
export type { NatsTransportOptions } from './nats-transport.js';
export { connectNatsTransport, natsServers } from './nats-transport.js';
export type { MemoryBus, MemoryBusOptions } from './memory-transport.js';
export { createMemoryBus } from './memory-transport.js';
