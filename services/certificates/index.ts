/**
 * Front door of services/certificates: a minimal DER writer and hand-written
 * X.509 for root CA, tenant CAs and device certificates.
 */
export * as der from './der.js';
export {
  Oid,
  DeviceCertKind,
  DEFAULT_TENANT_CA_VALIDITY_MS,
  CertificateInputError,
  createRootCa,
  createTenantCa,
  buildDeviceTbs,
  assembleCertificate,
  signTbs,
  toPem,
  randomSerial,
  encodeName,
  encodeSpki,
  keyIdentifier,
  type CaIdentity,
  type TbsIssuer,
  type DeviceTbsInput,
  type RootCaOptions,
  type TenantCaOptions,
} from './x509.js';
