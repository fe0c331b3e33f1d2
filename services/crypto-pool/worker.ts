/**
 * Piscina worker for the crypto pool. Loaded by file path from the compiled
 * output (`dist/services/crypto-pool/worker.js`); its default export handles one
 * task and never throws: failures come back as `{ ok: false, error }`.
 *
 * State kept per worker thread:
 * - parsed CA private keys by wire key ID (the pool makes IDs unique per key);
 * - parsed device public keys in a bounded Map (insertion-ordered, oldest evicted),
 *   including negative entries for keys that failed to parse.
 */
import { unwrapSessionKey, wrapSessionKey } from '../../actors/crypto/index.js';
import {
  createECDH,
  createPrivateKey,
  generateKeyPairSync,
  randomBytes,
  sign as nodeSign,
  type KeyObject,
} from 'node:crypto';
import { publicKeyFromRaw, signP1363, verifyP1363 } from '../../actors/crypto/index.js';
import {
  CryptoPoolErrorCode,
  type BenchResult,
  type BenchTask,
  type CryptoTask,
  type TimedWorkerResult,
  type VerifyIssueItem,
  type VerifyIssueTask,
  type VerifyIssueWireResult,
  type WorkerResult,
} from './protocol.js';

/** Maximum number of parsed device public keys kept per worker. */
export const DEVICE_KEY_CACHE_LIMIT = 50_000;
const CA_KEY_CACHE_LIMIT = 1024;

const deviceKeys = new Map<string, KeyObject | null>();
const caKeys = new Map<string, KeyObject>();

/** Parsed device key, or null if the raw bytes are not a valid P-256 point. */
function devicePublicKey(raw: Uint8Array | KeyObject): KeyObject | null {
  if (isKeyObject(raw)) return raw.type === 'public' && raw.asymmetricKeyType === 'ec' ? raw : null;
  if (!(raw instanceof Uint8Array) || raw.length !== 65) return null;
  // latin1 is a 1:1 byte->char mapping: the cheapest string key for 65 bytes.
  const id = Buffer.from(raw.buffer, raw.byteOffset, raw.length).toString('latin1');
  const hit = deviceKeys.get(id);
  if (hit !== undefined) return hit;
  let key: KeyObject | null;
  try {
    key = publicKeyFromRaw(raw);
  } catch {
    key = null;
  }
  if (deviceKeys.size >= DEVICE_KEY_CACHE_LIMIT) {
    const oldest = deviceKeys.keys().next();
    if (oldest.done !== true) deviceKeys.delete(oldest.value);
  }
  deviceKeys.set(id, key);
  return key;
}

function isKeyObject(x: unknown): x is KeyObject {
  return typeof x === 'object' && x !== null && !(x instanceof Uint8Array) && 'asymmetricKeyType' in x;
}

function caKey(task: VerifyIssueTask, id: string): WorkerResult<KeyObject> {
  const hit = caKeys.get(id);
  if (hit !== undefined) return { ok: true, value: hit };
  const pkcs8 = task.caKeys[id];
  if (pkcs8 === undefined) {
    return {
      ok: false,
      error: { code: CryptoPoolErrorCode.unknownCaKey, message: `CA key ${id} not supplied` },
    };
  }
  try {
    const key = createPrivateKey({
      key: Buffer.from(pkcs8.buffer, pkcs8.byteOffset, pkcs8.length),
      format: 'der',
      type: 'pkcs8',
    });
    if (caKeys.size >= CA_KEY_CACHE_LIMIT) caKeys.clear();
    caKeys.set(id, key);
    return { ok: true, value: key };
  } catch (e) {
    return {
      ok: false,
      error: { code: CryptoPoolErrorCode.badCaKey, message: `CA key ${id}: ${String(e)}` },
    };
  }
}

function verifyIssueOne(task: VerifyIssueTask, item: VerifyIssueItem): VerifyIssueWireResult {
  const key = devicePublicKey(item.publicKey);
  if (key === null || !(item.data instanceof Uint8Array)) return { signatureValid: false, signatures: [] };
  if (!verifyP1363(key, item.data, item.signature)) return { signatureValid: false, signatures: [] };
  const tbs = Array.isArray(item.tbs) ? item.tbs : [];
  if (tbs.length === 0) return { signatureValid: true, signatures: [] };
  if (typeof item.caKeyId !== 'string') {
    return {
      error: { code: CryptoPoolErrorCode.unknownCaKey, message: 'item has TBS to sign but no caKeyId' },
    };
  }
  const ca = caKey(task, item.caKeyId);
  if (!ca.ok) return { error: ca.error };
  const signatures: Uint8Array[] = [];
  for (const t of tbs) {
    if (!(t instanceof Uint8Array))
      return { error: { code: CryptoPoolErrorCode.badTask, message: 'TBS is not bytes' } };
    signatures.push(nodeSign('sha256', t, ca.value));
  }
  const s = item.session;
  if (s === undefined) return { signatureValid: true, signatures };
  try {
    const session = wrapSessionKey(s.key, s.clientPublicKey, s.ephemeralSecret, s.salt, s.sessionId);
    return { signatureValid: true, signatures, session };
  } catch (e) {
    return { error: { code: CryptoPoolErrorCode.badTask, message: `session key not wrapped: ${String(e)}` } };
  }
}

function verifyIssue(task: VerifyIssueTask): WorkerResult<VerifyIssueWireResult[]> {
  const items: readonly VerifyIssueItem[] | undefined = Array.isArray(task.items) ? task.items : undefined;
  if (items === undefined || typeof task.caKeys !== 'object' || task.caKeys === null) {
    return {
      ok: false,
      error: { code: CryptoPoolErrorCode.badTask, message: 'verify-issue task needs items[] and caKeys' },
    };
  }
  const out: VerifyIssueWireResult[] = [];
  for (const item of items) {
    try {
      out.push(verifyIssueOne(task, item));
    } catch (e) {
      out.push({ error: { code: CryptoPoolErrorCode.internal, message: String(e) } });
    }
  }
  return { ok: true, value: out };
}

// --- crypto-only benchmark -------------------------------------------------

interface BenchState {
  readonly devices: ReadonlyArray<{
    priv: KeyObject;
    raw: Uint8Array;
    clientScalar: Uint8Array;
    client: Uint8Array;
  }>;
  readonly ca: KeyObject;
}
let benchState: BenchState | undefined;

function benchSetup(): BenchState {
  if (benchState !== undefined) return benchState;
  const devices = Array.from({ length: 64 }, () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const spki = publicKey.export({ format: 'der', type: 'spki' });
    const client = createECDH('prime256v1');
    client.generateKeys();
    return {
      priv: privateKey,
      raw: Uint8Array.from(spki.subarray(spki.length - 65)),
      clientScalar: new Uint8Array(client.getPrivateKey()),
      client: new Uint8Array(client.getPublicKey()),
    };
  });
  benchState = { devices, ca: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey };
  return benchState;
}

/**
 * Per attestation, exactly the crypto of the end-to-end path: one P1363 evidence
 * signature by a device key, its verification (through the same device-key cache),
 * two DER signatures over certificate TBS bytes with the CA key, and the session key
 * wrapped for the device's client key (ephemeral key, ECDH, HKDF) and unwrapped by it (ECDH, HKDF).
 */
function bench(task: BenchTask): WorkerResult<BenchResult> {
  const n = task.n;
  if (!Number.isSafeInteger(n) || n < 0) {
    return { ok: false, error: { code: CryptoPoolErrorCode.badTask, message: `bad bench n ${n}` } };
  }
  const st = benchSetup();
  const msg = randomBytes(task.messageBytes ?? 300);
  const tbsA = randomBytes(task.tbsBytes ?? 400);
  const tbsB = randomBytes(task.tbsBytes ?? 400);
  const sessionKey = randomBytes(32);
  const salt = randomBytes(32);
  const sessionId = randomBytes(16);
  let signs = 0;
  let verifies = 0;
  let sessions = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const dev = st.devices[i % st.devices.length];
    if (dev === undefined) continue;
    msg[0] = i & 0xff;
    const sig = signP1363(dev.priv, msg);
    signs++;
    const pub = devicePublicKey(dev.raw);
    verifies++;
    if (pub === null || !verifyP1363(pub, msg, sig)) {
      return {
        ok: false,
        error: { code: CryptoPoolErrorCode.internal, message: 'bench signature did not verify' },
      };
    }
    nodeSign('sha256', tbsA, st.ca);
    nodeSign('sha256', tbsB, st.ca);
    signs += 2;
    const wrapped = wrapSessionKey(sessionKey, dev.client, randomBytes(32), salt, sessionId);
    const key = unwrapSessionKey(dev.clientScalar, wrapped, salt, sessionId);
    if (!sessionKey.equals(key)) {
      return {
        ok: false,
        error: { code: CryptoPoolErrorCode.internal, message: 'bench session key did not unwrap' },
      };
    }
    sessions++;
  }
  return {
    ok: true,
    value: { attestations: n, signs, verifies, sessions, elapsedMs: performance.now() - t0 },
  };
}

/**
 * Piscina entry point. Returns a typed result for every input, including garbage,
 * with the wall time spent in this call (`busyMs`).
 */
export default function run(task: CryptoTask): TimedWorkerResult<VerifyIssueWireResult[] | BenchResult> {
  const t0 = performance.now();
  return { ...dispatch(task), busyMs: performance.now() - t0 };
}

function dispatch(task: CryptoTask): WorkerResult<VerifyIssueWireResult[] | BenchResult> {
  try {
    switch (task?.kind) {
      case 'verify-issue':
        return verifyIssue(task);
      case 'bench':
        return bench(task);
      default:
        return { ok: false, error: { code: CryptoPoolErrorCode.badTask, message: 'unknown task kind' } };
    }
  } catch (e) {
    return { ok: false, error: { code: CryptoPoolErrorCode.internal, message: String(e) } };
  }
}
