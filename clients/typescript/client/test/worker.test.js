// Worker against a real `queueapp serve`. The conformance suite (tests/conformance)
// checks the rest: restarts, SIGTERM, dropped connections, a burst of 503s.
"use strict";
const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { once } = require("node:events");
const { hostname } = require("node:os");
const { QueueClient, Worker, WorkerRefused, UnrecoverableError } = require("../dist");
const { startAppliance, until } = require("./appliance");

let appliance;
let client;

before(async () => {
  appliance = await startAppliance();
  client = new QueueClient(appliance.url, { token: appliance.token, queue: "ts-worker" });
});

after(async () => {
  await client.close();
  await appliance.stop();
});

function options(extra = {}) {
  return { token: appliance.token, queue: "ts-worker", pollMs: 200, ...extra };
}

test("runs every job once with its result stored, many at a time", async () => {
  const jobs = await client.addBulk(Array.from({ length: 200 }, (_, i) => ({ name: "double", data: { n: i } })));
  let running = 0;
  let most = 0;
  const seen = [];
  const worker = new Worker(appliance.url, options({ names: ["double"], concurrency: 10 }), async (job) => {
    running += 1;
    most = Math.max(most, running);
    await new Promise((resolve) => setImmediate(resolve));
    running -= 1;
    return { doubled: job.data.n * 2 };
  });
  worker.on("completed", (job) => seen.push(job.id));
  await until(() => seen.length === 200, 30_000, "200 completions");
  await worker.close();
  assert.equal(new Set(seen).size, 200);
  assert.ok(most <= 10 && most > 1, `at most 10 at once, and more than one: ${most}`);
  const last = await client.getJob(jobs[199].id);
  assert.deepEqual([last.state, last.result, last.attemptsMade], ["completed", { doubled: 398 }, 1]);
});

test("progress is visible over the API while the job runs", async () => {
  const job = await client.add("slow-progress", {});
  let finish;
  const gate = new Promise((resolve) => { finish = resolve; });
  const worker = new Worker(appliance.url, options({ names: ["slow-progress"] }), async (running) => {
    await running.progress(50);
    await gate;
    return "done";
  });
  const [running] = await once(worker, "progress");
  assert.equal(running.id, job.id);
  const seen = await client.getJob(job.id);
  assert.deepEqual([seen.state, seen.progress], ["active", 50]);
  finish();
  await once(worker, "completed");
  await worker.close();
  assert.equal((await client.getJob(job.id)).result, "done");
});

test("a failure is stored with its message and stack, retried, and final when unrecoverable", async () => {
  const flaky = await client.add("flaky", {}, { attempts: 2, backoff: { type: "fixed", delay: 0 } });
  const doomed = await client.add("doomed", {}, { attempts: 5 });
  const worker = new Worker(appliance.url, options({ names: ["flaky", "doomed"], concurrency: 2 }), async (job) => {
    if (job.name === "doomed") throw new UnrecoverableError("card declined");
    if (job.attemptsMade === 1) throw new TypeError("cannot read properties of undefined (reading 'to')");
    return { ok: true };
  });
  const failures = [];
  worker.on("failed", (job, error) => failures.push([job.name, error.message]));
  await until(async () => (await client.getJob(flaky.id)).state === "completed" &&
    (await client.getJob(doomed.id)).state === "failed", 30_000, "both settled");
  await worker.close();
  const first = (await client.getJob(flaky.id)).errors[0];
  assert.equal(first.message, "TypeError: cannot read properties of undefined (reading 'to')");
  assert.match(first.stack, /^TypeError: cannot read properties/);
  assert.match(first.stack, /worker\.test\.js:\d+:\d+/);
  assert.equal(first.worker, `${hostname()}:${process.pid}`);  // who ran the attempt: host and process
  assert.equal(worker.name, first.worker);
  const lost = await client.getJob(doomed.id);
  assert.deepEqual([lost.attemptsMade, lost.error], [1, "card declined"]);
  assert.equal(failures.length, 2);
});

test("close lets running jobs finish up to its timeout and hands back the rest", async () => {
  const quick = await client.add("closing-quick", {});
  const stuck = await client.add("closing-stuck", {});
  let started = 0;
  let startedAll;
  const allStarted = new Promise((resolve) => { startedAll = resolve; });
  const worker = new Worker(appliance.url, options({ names: ["closing-quick", "closing-stuck"], concurrency: 2 }),
    async (job) => {
      if (++started === 2) startedAll();
      if (job.name === "closing-stuck") await new Promise((resolve) => job.signal.addEventListener("abort", resolve));
      else await allStarted;
      return job.name;
    });
  await allStarted;
  await worker.close(300);
  assert.equal((await client.getJob(quick.id)).state, "completed");
  const back = await client.getJob(stuck.id);
  assert.deepEqual([back.state, back.attemptsMade], ["waiting", 0]);  // released, the attempt not counted
  assert.deepEqual(worker.counts, { completed: 1, failed: 0, released: 1 });
});

test("a wrong token stops the worker with one clear error", async () => {
  const worker = new Worker(appliance.url, { ...options(), token: "wrong", autorun: false }, async () => null);
  const errors = [];
  worker.on("error", (error) => errors.push(error));
  await assert.rejects(worker.run(), (error) => error instanceof WorkerRefused && /401 unauthorized/.test(error.message));
  assert.equal(errors.length, 1);
  assert.match(errors[0].message, /check the token/);
});
