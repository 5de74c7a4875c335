#!/usr/bin/env node
// The TypeScript Worker as the conformance suite (tests/conformance) drives it: the
// suite's job types, each reporting what it did to CONFORMANCE_REPORT, one JSON
// object a line. Settings from the environment: QUEUEAPP_URL, QUEUEAPP_TOKEN,
// QUEUEAPP_QUEUE, CONCURRENCY, LEASE_MS, GRACE_MS. SIGTERM closes the worker
// gracefully (exit 0); a refused token exits 1 with one message.
"use strict";
const fs = require("node:fs");
const { Worker, UnrecoverableError, WorkerRefused } = require("../dist");

const env = process.env;
const reportTo = env.CONFORMANCE_REPORT;
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function report(event, job, extra = {}) {
  const line = { event, id: job.id, name: job.name, attempt: job.attemptsMade, pid: process.pid, at: Date.now(), ...extra };
  fs.appendFileSync(reportTo, JSON.stringify(line) + "\n");
}

function deepInside() {
  throw new Error("deep failure");
}

const handlers = {
  echo: async (job) => job.data,
  "fail-twice": async (job) => {
    if (job.attemptsMade <= 2) throw new Error(`attempt ${job.attemptsMade} failed`);
    return { attempt: job.attemptsMade };
  },
  "fail-final": async () => { throw new UnrecoverableError("card declined"); },
  slow: async (job) => { await pause(job.data.ms); return { slept: job.data.ms }; },
  progress: async (job) => { await job.progress(50); await pause(job.data.ms); return "done"; },
  "throws-with-stack": async () => deepInside(),
  log: async (job) => { await job.log("first line", "second\nthird"); await job.log("x".repeat(2500)); return "logged"; },
};

const worker = new Worker(env.QUEUEAPP_URL, {
  token: env.QUEUEAPP_TOKEN,
  queue: env.QUEUEAPP_QUEUE || "default",
  names: Object.keys(handlers),
  concurrency: Number(env.CONCURRENCY || 5),
  leaseMs: Number(env.LEASE_MS || 30000),
  closeTimeoutMs: Number(env.GRACE_MS || 10000),
  pollMs: 1000,
  autorun: false,
}, async (job) => {
  report("start", job);
  try {
    const result = await handlers[job.name](job);
    report("done", job);
    return result;
  } catch (error) {
    report("fail", job, { error: error.message });
    throw error;
  }
});
worker.on("error", (error) => {
  if (!(error instanceof WorkerRefused)) console.error(`worker: ${error.message}`);
});
process.on("SIGTERM", () => void worker.close());
process.on("SIGINT", () => void worker.close());
worker.run().then(
  () => { console.log(JSON.stringify({ stopped: worker.counts })); process.exit(0); },
  (error) => { console.error(`queueapp worker: ${error.message}`); process.exit(1); },
);
