#!/usr/bin/env node
// The TypeScript client's throughput, for scripts/bench's "typescript" scenario:
//   node scripts/bench_typescript.js add URL TOKEN N      64 concurrent add() calls, N jobs in all
//   node scripts/bench_typescript.js worker URL TOKEN N   a Worker at concurrency 50 on N no-op jobs
// Prints one JSON line: {"jobs_per_s": ...}.
"use strict";
const path = require("node:path");
const { QueueClient, Worker } = require(path.join(__dirname, "..", "clients", "typescript", "client", "dist"));

const [mode, url, token, count] = process.argv.slice(2);
const N = Number(count);

async function adds() {
  const client = new QueueClient(url, { token: token || undefined, queue: "ts-bench" });
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (next < N) {
      next += 1;
      await client.add("noop", { i: next });
    }
  }));
  return N / (Number(process.hrtime.bigint() - started) / 1e9);
}

async function work() {
  const client = new QueueClient(url, { token: token || undefined, queue: "ts-bench" });
  for (let lo = 0; lo < N; lo += 5000) {
    await client.addBulk(Array.from({ length: Math.min(5000, N - lo) }, (_, i) => ({ name: "noop", data: { i: lo + i } })));
  }
  let done = 0;
  let finish;
  const finished = new Promise((resolve) => { finish = resolve; });
  const started = process.hrtime.bigint();
  const worker = new Worker(client, { names: ["noop"], concurrency: 50, pollMs: 1000 }, async () => null);
  worker.on("completed", () => { if (++done === N) finish(); });
  await finished;
  const rate = N / (Number(process.hrtime.bigint() - started) / 1e9);
  await worker.close();
  return rate;
}

(mode === "add" ? adds() : work()).then((rate) => {
  console.log(JSON.stringify({ jobs_per_s: Math.round(rate) }));
  process.exit(0);
}, (error) => { console.error(error); process.exit(1); });
