/**
 * Read-only HTTP front for tenant TUF repositories (node:http).
 *
 * Routes (tenant path is exactly one URL segment, percent-decoded):
 * - `GET /<tenant>/metadata/<file>` → exact metadata bytes, `application/json`
 * - `GET /<tenant>/targets/<path>` → target bytes by hash-prefixed path, `application/octet-stream`
 *
 * Anything else is 404; any method other than GET/HEAD is 405 (`Allow: GET, HEAD`).
 * Responses carry `Cache-Control: no-store` so a client always sees the current timestamp.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TufServableRepository } from './repository.js';

/** Options for {@link serveTufRepositories}. */
export interface ServeTufRepositoriesOptions {
  /** TCP port; 0 picks a free one. */
  readonly port: number;
  /** Bind address; default `127.0.0.1`. */
  readonly host?: string;
  /** Resolves a tenant path segment to its repository, or undefined (→ 404). */
  readonly repos: (tenantPath: string) => TufServableRepository | undefined;
}

/** A running server. */
export interface TufHttpServer {
  /** Base URL, e.g. `http://127.0.0.1:41234` (no trailing slash). */
  readonly url: string;
  readonly port: number;
  /** Stops accepting connections and closes idle/active ones. */
  close(): Promise<void>;
}

type Resolved = { readonly body: Uint8Array; readonly contentType: string } | undefined;

function resolve(pathname: string, repos: ServeTufRepositoriesOptions['repos']): Resolved {
  const parts = pathname.split('/');
  // ['', tenant, 'metadata'|'targets', ...rest]
  if (parts.length < 4 || parts[0] !== '') return undefined;
  let tenant: string;
  let rest: string;
  try {
    tenant = decodeURIComponent(parts[1] ?? '');
    rest = parts
      .slice(3)
      .map((p) => decodeURIComponent(p))
      .join('/');
  } catch {
    return undefined;
  }
  if (tenant === '' || rest === '') return undefined;
  const repo = repos(tenant);
  if (repo === undefined) return undefined;
  if (parts[2] === 'metadata') {
    if (rest.includes('/')) return undefined;
    const body = repo.metadataFiles().get(rest);
    return body === undefined ? undefined : { body, contentType: 'application/json' };
  }
  if (parts[2] === 'targets') {
    const body = repo.targetBytes(rest);
    return body === undefined ? undefined : { body, contentType: 'application/octet-stream' };
  }
  return undefined;
}

function handle(
  req: IncomingMessage,
  res: ServerResponse,
  repos: ServeTufRepositoriesOptions['repos'],
): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' });
    res.end('method not allowed\n');
    return;
  }
  const rawUrl = req.url ?? '/';
  const q = rawUrl.indexOf('?');
  const found = resolve(q < 0 ? rawUrl : rawUrl.slice(0, q), repos);
  if (found === undefined) {
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
    return;
  }
  res.writeHead(200, {
    'content-type': found.contentType,
    'content-length': String(found.body.length),
    'cache-control': 'no-store',
  });
  res.end(req.method === 'HEAD' ? undefined : found.body);
}

/**
 * Starts the server; resolves once listening.
 * @throws (rejects with) the listen error, e.g. EADDRINUSE.
 */
export function serveTufRepositories(opts: ServeTufRepositoriesOptions): Promise<TufHttpServer> {
  const host = opts.host ?? '127.0.0.1';
  const server = createServer((req, res) => handle(req, res, opts.repos));
  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(opts.port, host, () => {
      server.off('error', reject);
      const port = (server.address() as AddressInfo).port;
      const urlHost = host.includes(':') ? `[${host}]` : host;
      resolvePromise({
        url: `http://${urlHost}:${port}`,
        port,
        close: () =>
          new Promise<void>((done, fail) => {
            server.close((e) => (e ? fail(e) : done()));
            server.closeAllConnections();
          }),
      });
    });
  });
}
