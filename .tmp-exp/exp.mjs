import { startNatsCluster } from '/work/main/dist/deploy/local/cluster.js';
import { openJetStreamJournal } from '/work/main/dist/services/journal/index.js';
import { connect } from 'nats';
const cluster = await startNatsCluster({ size: 3, logDir: '/tmp/dupexp/logs' });
const urls = cluster.urls.join(',');
const journals = await Promise.all([0,1,2,3].map((i) => openJetStreamJournal({ servers: urls, name: 'exp', connectionName: `w${i}`, replicas: 3 })));
const nc = await connect({ servers: cluster.urls });
const jsm = await nc.jetstreamManager();
let stop = false; const stats = { ok: 0, err: 0, fenced: 0 };
const acked = new Map();
async function lastOf(p) {
  for (;;) { try { const m = await jsm.streams.getMessage('EXP_JOURNAL', { last_by_subj: `exp.part.${p}` }); return m.seq; } catch (e) { if (String(e).includes('no message')) return 0; await new Promise(r=>setTimeout(r,200)); } }
}
async function writer(i) {
  const j = journals[i]; const p = i; let last = await lastOf(p); let n = 0;
  while (!stop) {
    const id = `w${i}-${n++}`;
    try {
      const seq = await j.appendPartition(p, { o: id, token: 1, devices: [] }, last);
      if (seq === null) { stats.fenced++; last = await lastOf(p); } else { stats.ok++; last = seq; acked.set(id, seq); }
    } catch (e) { stats.err++; last = -1; }
    if (last === -1) { last = await lastOf(p); }
  }
}
const ws = [0,1,2,3].map(writer);
for (let c = 0; c < 6; c++) {
  await new Promise(r=>setTimeout(r,2000));
  const info = await jsm.streams.info('EXP_JOURNAL').catch(()=>null);
  const leader = info?.cluster?.leader ?? '';
  const idx = cluster.nodes.findIndex(n => n.name === leader);
  console.log(`cycle ${c}: leader ${leader} (${idx}) stats ${JSON.stringify(stats)}`);
  if (idx < 0) continue;
  cluster.kill(idx);
  await new Promise(r=>setTimeout(r,3000));
  await cluster.restart(idx);
  await cluster.waitForJetStream().catch(e=>console.log('wait', e.message));
}
stop = true; await Promise.allSettled(ws);
await new Promise(r=>setTimeout(r,2000));
// read all
const seen = new Map(); let total = 0;
const js = nc.jetstream(); const c = await js.consumers.get('EXP_JOURNAL');
const info = await jsm.streams.info('EXP_JOURNAL'); const target = info.state.last_seq;
const msgs = await c.consume();
for await (const m of msgs) { total++; const o = JSON.parse(new TextDecoder().decode(m.data)).o; seen.set(o, [...(seen.get(o) ?? []), m.seq]); if (m.seq >= target) break; }
const dups = [...seen].filter(([, s]) => s.length > 1);
console.log(`total ${total} distinct ${seen.size} dups ${dups.length}`, dups.slice(0,5), 'stats', stats);
for (const [id, seq] of acked) if (!seen.has(id)) console.log('lost', id, seq);
await nc.close(); for (const j of journals) await j.close().catch(()=>{}); await cluster.stop();
process.exit(0);
