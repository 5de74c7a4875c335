// QueueClient against a real `queueapp serve`.
"use strict";
const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { execFileSync } = require("node:child_process");
const path = require("node:path");
const { QueueClient, QueueApiError, METHOD_OF, OPERATIONS } = require("../dist");
const { startAppliance } = require("./appliance");

let appliance;
let client;

before(async () => {
  appliance = await startAppliance();
  client = new QueueClient(appliance.url, { token: appliance.token, queue: "ts-client" });
});

after(async () => {
  await client.close();
  await appliance.stop();
});

test("the generated types are the appliance's OpenAPI description, operation for operation", async () => {
  const script = path.join(__dirname, "..", "scripts", "generate-types.js");
  execFileSync(process.execPath, [script, "--check"], { stdio: "pipe" });  // `queueapp openapi`
  execFileSync(process.execPath, [script, "--check", "--from", `${appliance.url}/openapi.json`], {
    stdio: "pipe", env: { ...process.env, QUEUEAPP_TOKEN: appliance.token },
  });
  const live = await client.openapi();
  const ids = Object.values(live.paths).flatMap((methods) => Object.values(methods).map((op) => op.operationId));
  assert.deepEqual([...ids].sort(), Object.keys(OPERATIONS).sort());
  for (const id of ids) assert.equal(typeof QueueClient.prototype[METHOD_OF[id]], "function", id);
});

test("add answers the job; an unknown factor is refused with the API's error shape", async () => {
  const job = await client.add("send-email", { to: "user@example.com" }, { priority: 2, attempts: 3 });
  assert.equal(job.state, "waiting");
  assert.equal(job.priority, 2);
  assert.equal(job.queue, "ts-client");
  assert.deepEqual((await client.getJob(job.id)).data, { to: "user@example.com" });
  await assert.rejects(client.add("x", {}, {}, { urgency: "whenever" }), (error) => {
    assert.ok(error instanceof QueueApiError);
    assert.equal(error.status, 400);
    assert.equal(error.code, "validation_error");
    assert.equal(error.details[0].field, "priorityFactors.urgency");  // not jobs.N.…: its own error
    return true;
  });
  assert.equal(await client.findJob("999999999"), null);
});

test("concurrent adds go together in bulks, each caller answered with its own job or error", async () => {
  const before = (await client.metrics()).total;
  const adds = Array.from({ length: 300 }, (_, i) =>
    client.add("coalesced", { i }, i === 150 ? { priority: 9 } : {}).then((job) => job, (error) => error));
  const answers = await Promise.all(adds);
  answers.forEach((answer, i) => {
    if (i === 150) {
      assert.ok(answer instanceof QueueApiError);
      assert.equal(answer.details[0].field, "options.priority");
    } else {
      assert.deepEqual(answer.data, { i });
    }
  });
  assert.equal(new Set(answers.filter((a) => a.id).map((a) => a.id)).size, 299);
  assert.equal((await client.metrics()).total, before + 299);
});

test("bulk, stream, schedule, retry and cancel as the API answers them", async () => {
  const jobs = await client.addBulk([{ name: "a", data: { n: 1 } }, { name: "b", options: { delay: 60_000 } }]);
  assert.deepEqual(jobs.map((j) => j.state), ["waiting", "delayed"]);
  const lines = await client.addStream([{ name: "s1" }, { name: "s2", options: { priority: 7 } }]);
  assert.ok(lines[0].id);
  assert.equal(lines[1].error.code, "validation_error");
  const later = new Date(Date.now() + 3_600_000);
  const scheduled = await client.schedule("send-reminder", { userId: "123" }, later);
  assert.equal(scheduled.state, "delayed");
  assert.equal(Date.parse(scheduled.runAt), Math.floor(later.getTime()));
  const cancelled = await client.cancelJob(scheduled.id);
  assert.equal(cancelled.state, "cancelled");
  assert.equal((await client.retryJob(scheduled.id)).state, "waiting");
  assert.equal((await client.promoteJob(jobs[1].id)).state, "waiting");
  await assert.rejects(client.promoteJob(jobs[1].id), (e) => e.status === 409);
});

test("metrics, health, pause and resume, clean, queues", async () => {
  const metrics = await client.metrics();
  for (const key of ["queueName", "waiting", "active", "completed", "failed", "delayed", "paused", "total", "throughput", "avgProcessingTime"]) {
    assert.equal(typeof metrics[key], key === "queueName" ? "string" : "number", key);
  }
  const health = await client.health();
  assert.ok(["healthy", "warning", "critical"].includes(health.status));
  assert.deepEqual(await client.pause(), { queue: "ts-client", paused: true });
  assert.equal((await client.listQueues()).queues.find((q) => q.name === "ts-client").paused, true);
  assert.deepEqual(await client.resume(), { queue: "ts-client", paused: false });
  assert.equal(typeof (await client.clean({ grace: 0, status: "completed" })).removed, "number");
  assert.match(await client.prometheusMetrics(), /queueapp_jobs/);
});

test("schedules: save, list, run now, pause, delete", async () => {
  const saved = await client.saveSchedule({ name: "nightly", cron: "0 3 * * *", timezone: "UTC", data: { k: 1 } });
  assert.equal(saved.name, "nightly");
  assert.ok(saved.nextRunAt);
  assert.ok((await client.listSchedules()).some((s) => s.name === "nightly"));
  const fired = await client.runSchedule("nightly");
  assert.equal(fired.name, "nightly");
  assert.equal((await client.pauseSchedule("nightly")).enabled, false);
  assert.equal((await client.resumeSchedule("nightly")).enabled, true);
  await client.deleteSchedule("nightly");
  await assert.rejects(client.getSchedule("nightly"), (e) => e.status === 404);
});

test("the events stream tells each committed transition", async () => {
  const stop = new AbortController();
  const seen = [];
  const reading = (async () => {
    try {
      for await (const event of client.events({ names: ["evented"], signal: stop.signal })) {
        seen.push(event);
        if (seen.length === 1) stop.abort();
      }
    } catch (error) {
      if (error.name !== "AbortError") throw error;  // an abort before the stream opened
    }
  })();
  // the stream is open once the appliance counts its subscriber; until then, add again
  let job;
  for (let tries = 0; !seen.length && tries < 200; tries++) {
    job = await client.add("evented", {});
    await Promise.race([reading, new Promise((r) => setTimeout(r, 50))]);
  }
  await reading;
  assert.equal(seen[0].type, "added");
  assert.equal(seen[0].name, "evented");
  assert.match(seen[0].id, /^[0-9a-f]+-\d+$/);
  // resuming after it answers what came after it, in order
  const later = await client.add("evented", {});
  const resumed = [];
  const again = new AbortController();
  for await (const event of client.events({ names: ["evented"], lastEventId: seen[0].id, signal: again.signal })) {
    resumed.push(event);
    if (event.jobId === later.id) again.abort();
  }
  assert.equal(resumed.at(-1).jobId, later.id);
  assert.ok(resumed.every((event) => event.type === "added"));
  assert.ok(job);
});

test("the audit trail keeps an operator's change, of every queue or of one", async () => {
  await client.pause();
  await client.resume();
  const every = await client.auditTrail();
  assert.deepEqual(every.entries.slice(0, 2).map((e) => [e.action, e.queue, e.via]),
    [["resume queue", "ts-client", "api"], ["pause queue", "ts-client", "api"]]);
  assert.equal((await client.auditTrail({ queue: "elsewhere" })).entries.length, 0);
});

test("an API key made by the client adds to its queue only, and stops when revoked", async () => {
  const made = await client.createApiKey({ name: "ts-billing", roles: ["enqueue"], queues: ["ts-client"] });
  assert.match(made.secret, /^qak_[A-Za-z0-9]{12}_[A-Za-z0-9]{32}$/);
  const billing = new QueueClient(appliance.url, { token: made.secret, queue: "ts-client" });
  const elsewhere = new QueueClient(appliance.url, { token: made.secret, queue: "ts-other" });
  try {
    assert.equal((await billing.add("charge", { cents: 100 })).queue, "ts-client");
    await assert.rejects(elsewhere.add("charge", {}), (e) => e instanceof QueueApiError && e.status === 403);
    await assert.rejects(billing.metrics(), (e) => e instanceof QueueApiError && e.status === 403);
    assert.ok((await client.listApiKeys()).some((k) => k.id === made.id && !("secret" in k)));
    assert.equal((await client.revokeApiKey(made.id)).state, "revoked");
    await assert.rejects(billing.add("charge", {}), (e) => e instanceof QueueApiError && e.status === 401);
  } finally {
    await billing.close();
    await elsewhere.close();
  }
});

test("a wrong token is a 401 in the API's shape", async () => {
  const stranger = new QueueClient(appliance.url, { token: "wrong" });
  await assert.rejects(stranger.metrics(), (e) => e instanceof QueueApiError && e.status === 401 && e.code === "unauthorized");
});
