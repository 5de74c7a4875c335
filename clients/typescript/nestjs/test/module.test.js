// @queueapp/nestjs in a real NestJS application context against a real `queueapp serve`.
// Plain JavaScript: decorators are applied as TypeScript compiles them (Reflect.decorate).
"use strict";
require("reflect-metadata");
const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { execFileSync } = require("node:child_process");
const { Injectable, Module } = require("@nestjs/common");
const { NestFactory } = require("@nestjs/core");
const { ConfigModule, ConfigService } = require("@nestjs/config");
const {
  QueueappModule, QueueService, PrioritizationService, RetryLogicService, JobSchedulerService,
  QueueMonitoringService, Processor, Process, OnQueueCompleted, OnQueueFailed, InjectQueue, JobPriority, getQueueToken,
} = require("../dist");
const { startAppliance, until } = require("../../client/test/appliance");

let appliance;

before(async () => {
  appliance = await startAppliance({ args: ["--builtin-jobs", "http"] });
});

after(async () => {
  await appliance.stop();
});

function method(cls, name, ...decorators) {
  Reflect.decorate(decorators, cls.prototype, name, Object.getOwnPropertyDescriptor(cls.prototype, name));
}

async function context(imports, providers = []) {
  class TestModule {}
  Reflect.decorate([Module({ imports, providers })], TestModule);
  const app = await NestFactory.createApplicationContext(TestModule, { logger: false });
  await app.init();
  return app;
}

test("processors run by job name, '*' takes the rest, listeners hear, app.close() stops them", async () => {
  const seen = { completed: [], failed: [] };
  class Mail {
    async send(job) { await job.progress(50); return { to: job.data.to }; }
    async rest(job) { if (job.name === "explode") throw new Error("boom"); return job.name; }
    done(job, result) { seen.completed.push([job.name, result]); }
    failed(job, error) { seen.failed.push([job.name, error.message]); }
  }
  Reflect.decorate([Processor("nest-mail"), Injectable()], Mail);
  method(Mail, "send", Process({ name: "send-email", concurrency: 3 }));
  method(Mail, "rest", Process());
  method(Mail, "done", OnQueueCompleted());
  method(Mail, "failed", OnQueueFailed());
  const app = await context([
    QueueappModule.forRoot({ url: appliance.url, token: appliance.token, queue: "nest-mail" }),
  ], [Mail]);
  const queue = app.get(getQueueToken("nest-mail"));
  const email = await queue.add("send-email", { to: "a@example.com" }, { priority: JobPriority.HIGH, attempts: 1 });
  const other = await queue.add("resize", {}, { backoff: 1000 });
  const bad = await queue.add("explode", {}, { attempts: 1 });
  await until(() => seen.completed.length === 2 && seen.failed.length === 1, 20_000, "three jobs settled");
  assert.deepEqual(seen.completed.sort(), [["resize", "resize"], ["send-email", { to: "a@example.com" }]]);
  assert.deepEqual(seen.failed, [["explode", "boom"]]);
  assert.equal((await queue.getJob(email.id)).progress, 100);  // completed: 100, whatever was reported
  assert.deepEqual((await queue.getJob(other.id)).options.backoff, { type: "fixed", delay: 1000, maxDelay: null, multiplier: 2, jitter: 0 });
  assert.equal((await queue.getFailed())[0].id, bad.id);
  const counts = await queue.getJobCounts();
  assert.deepEqual([counts.completed, counts.failed, counts.waiting], [2, 1, 0]);
  await app.close();
  // closed: a new job waits for a worker
  const waiting = await queue.add("resize", {});
  assert.equal((await queue.getJob(waiting.id)).state, "waiting");
  await queue.pause();
  assert.equal(await queue.isPaused(), true);
  await queue.resume();
  assert.equal(await queue.clean(0, "completed"), 2);
  await assert.rejects(() => queue.add("x", {}, { lifo: true }), /lifo is not supported/);
});

test("forRootAsync takes its options from ConfigService; @InjectQueue gives a registered queue", async () => {
  class Reports {
    constructor(queue) { this.queue = queue; }
  }
  Reflect.decorate([Injectable(), Reflect.metadata("design:paramtypes", [Object])], Reports);
  InjectQueue("nest-reports")(Reports, undefined, 0);
  const app = await context([
    ConfigModule.forRoot({ ignoreEnvFile: true, load: [() => ({ QUEUEAPP_URL: appliance.url, QUEUEAPP_TOKEN: appliance.token })] }),
    QueueappModule.forRootAsync({
      imports: [ConfigModule], inject: [ConfigService],
      useFactory: (config) => ({ url: config.get("QUEUEAPP_URL"), token: config.get("QUEUEAPP_TOKEN"), workers: false }),
    }),
    QueueappModule.registerQueue({ name: "nest-reports", concurrency: 2 }),
  ], [Reports]);
  const reports = app.get(Reports);
  assert.equal(reports.queue.name, "nest-reports");
  const job = await reports.queue.add("generate", { day: 1 });
  assert.equal(job.queue, "nest-reports");
  const added = await app.get(QueueService).addJob("send-email", { to: "b@example.com" }, { priority: JobPriority.LOW });
  assert.deepEqual([added.queue, added.priority], ["default", 4]);
  const metrics = await app.get(QueueMonitoringService).getQueueMetrics();
  assert.equal(metrics.queueName, "default");
  await app.close();
});

test("calculatePriority and getJobOptions give what the appliance gives the same factors", async () => {
  const app = await context([QueueappModule.forRoot({ url: appliance.url, token: appliance.token, queue: "nest-prio", workers: false })]);
  const priorities = app.get(PrioritizationService);
  const queueService = app.get(QueueService);
  const now = Date.now();
  const deadlines = [undefined, now - 1000, now + 30 * 60_000, now + 5 * 3_600_000, now + 3 * 86_400_000, now + 30 * 86_400_000];
  const factors = [];
  for (const userTier of [undefined, "enterprise", "premium", "standard", "free"]) {
    for (const urgency of [undefined, "critical", "high", "normal", "low"]) {
      for (const businessImpact of [undefined, "revenue", "customer", "operational", "internal"]) {
        for (const at of deadlines) {
          factors.push({ userTier, urgency, businessImpact, ...(at === undefined ? {} : { deadline: new Date(at) }) });
        }
      }
    }
  }
  const jobs = await queueService.addBulkJobs(factors.map((f) => ({ name: "probe", priorityFactors: f })));
  factors.forEach((f, i) => assert.equal(priorities.calculatePriority(f, now), jobs[i].priority, JSON.stringify(f)));
  for (const priority of [1, 2, 3, 4, 5]) {
    const expected = JSON.parse(execFileSync(process.env.PYTHON || "python3", ["-c",
      `import json; from queueapp.priority import get_job_options; print(json.dumps(get_job_options(${priority})))`]));
    assert.deepEqual(priorities.getJobOptions(priority), expected);
  }
  assert.throws(() => priorities.calculatePriority({ urgency: "whenever" }), /urgency must be one of/);
  await app.close();
});

test("RetryLogicService's strategies and delays are the appliance's", async () => {
  const retry = new RetryLogicService();
  const python = JSON.parse(execFileSync(process.env.PYTHON || "python3", ["-c", `
import json
from queueapp.retry import DEFAULT_STRATEGIES, calculate_backoff_delay, strategy_for_job
from dataclasses import replace
out = {}
for kind, policy in DEFAULT_STRATEGIES.items():
    out[kind] = {"policy": policy.to_options(), "delays": [calculate_backoff_delay(n, replace(policy, jitter=0)) for n in range(1, 12)]}
out["names"] = {name: strategy_for_job(name).to_options() for name in ["send-email", "process-payment", "webhook-out", "resize"]}
print(json.dumps(out))`]));
  for (const [kind, { policy, delays }] of Object.entries(python).filter(([k]) => k !== "names")) {
    const strategy = retry.getDefaultStrategy(kind);
    assert.deepEqual(retry.toJobOptions(strategy).backoff, policy, kind);
    assert.deepEqual(delays.map((_, n) => retry.calculateBackoffDelay(n + 1, { ...strategy, jitter: 0 })), delays, kind);
  }
  for (const [name, policy] of Object.entries(python.names)) {
    assert.deepEqual(retry.toJobOptions(retry.strategyForJob(name)).backoff, policy, name);
  }
  const email = retry.getDefaultStrategy("email");
  assert.equal(retry.calculateBackoffDelay(2, email, () => 0), 4000);
  assert.equal(retry.calculateBackoffDelay(2, email, () => 1), 3600);
});

test("JobSchedulerService: a time, a delay, and a recurring callback run by the appliance's schedule", async () => {
  const app = await context([QueueappModule.forRoot({ url: appliance.url, token: appliance.token, queue: "nest-sched" })]);
  const scheduler = app.get(JobSchedulerService);
  const at = new Date(Date.now() + 3_600_000);
  const later = await scheduler.scheduleJob("send-reminder", { userId: "123" }, at);
  assert.deepEqual([later.state, Date.parse(later.runAt)], ["delayed", at.getTime()]);
  const asked = Date.now();
  const delayed = await scheduler.scheduleDelayedJob("cleanup-temp-files", {}, 60_000);
  assert.equal(delayed.state, "delayed");
  assert.ok(Date.parse(delayed.runAt) >= asked + 60_000, `${delayed.runAt} is a minute after ${new Date(asked).toISOString()}`);
  let runs = 0;
  const schedule = await scheduler.scheduleRecurringJob("nightly-report", "0 9 * * *", async () => { runs += 1; });
  assert.equal(schedule.cron, "0 9 * * *");
  const recurring = appliance.url + "/queues/schedules/nightly-report/run?queue=nest-sched.recurring";
  await fetch(recurring, { method: "POST", headers: appliance.headers });
  await until(() => runs === 1, 20_000, "the callback ran");
  await app.close();
});
