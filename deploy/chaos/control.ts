/**
 * The chaos controller's HTTP face, for `sphere chaos` against a running stack:
 *
 *   GET    /faults        {active: [...], faults: [...spans], events: [...]}
 *   POST   /faults        body: one fault as JSON, written as in a scenario (`at` is ignored:
 *                         now); 201 {id}, or 400 {error} naming what is wrong
 *   DELETE /faults/<id>   heal it now; 200 {id}, 404 when no such fault is in effect
 *
 * Listens on 127.0.0.1 only: it can kill the stack's processes.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ChaosFault } from '../../loadgen/scenario/index.js';
import type { ChaosController } from './controller.js';

const MAX_BODY = 64 * 1024;

export interface ChaosControl {
  readonly url: string;
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);
}

async function body(req: IncomingMessage): Promise<string> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new Error(`body larger than ${MAX_BODY} bytes`);
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export async function serveChaosControl(
  controller: ChaosController,
  compile: (input: unknown) => ChaosFault,
  port: number,
): Promise<ChaosControl> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0] ?? '';
    void (async () => {
      if (req.method === 'GET' && path === '/faults') {
        send(res, 200, {
          active: controller.active(),
          faults: controller.spans(),
          events: controller.events(),
        });
      } else if (req.method === 'POST' && path === '/faults') {
        let fault: ChaosFault;
        try {
          fault = compile(JSON.parse(await body(req)) as unknown);
        } catch (e) {
          send(res, 400, { error: e instanceof Error ? e.message : String(e) });
          return;
        }
        send(res, 201, { id: controller.inject(fault), label: fault.label });
      } else if (req.method === 'DELETE' && path.startsWith('/faults/')) {
        const id = decodeURIComponent(path.slice('/faults/'.length));
        if (!controller.active().some((a) => a.id === id)) {
          send(res, 404, { error: `no fault ${id} in effect (GET /faults lists them)` });
          return;
        }
        await controller.heal(id);
        send(res, 200, { id });
      } else send(res, 404, { error: 'GET /faults, POST /faults, DELETE /faults/<id>' });
    })().catch((e: unknown) => send(res, 500, { error: e instanceof Error ? e.message : String(e) }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
