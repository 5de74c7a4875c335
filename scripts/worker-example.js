#!/usr/bin/env node
// A queueapp worker in another language: lease jobs over HTTP, heartbeat, complete
// or fail them. Node 18+ (global fetch), no packages.
//
//   node scripts/worker-example.js http://127.0.0.1:3000 resize-image [maxJobs]
//
// It "resizes" by computing the area of data.width x data.height, fails jobs
// without a size (they retry with backoff), and exits after maxJobs jobs (default:
// run until SIGTERM, then hand back what it holds).
const [base = "http://127.0.0.1:3000", name = "resize-image", maxJobs = "0"] = process.argv.slice(2);
const token = process.env.QUEUEAPP_TOKEN;
const headers = { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) };
let stopping = false;
process.on("SIGTERM", () => { stopping = true; });

async function call(path, body) {
  const response = await fetch(base + path, { method: "POST", headers, body: JSON.stringify(body) });
  const payload = await response.json();
  if (!response.ok) throw new Error(`${response.status} ${payload.error.code}: ${payload.error.message}`);
  return payload;
}

async function work(job) {
  await call(`/queues/jobs/${job.id}/heartbeat`, { leaseToken: job.leaseToken, progress: 50 });
  const { width, height } = job.data;
  if (!Number.isFinite(width) || !Number.isFinite(height)) {
    await call(`/queues/jobs/${job.id}/fail`, { leaseToken: job.leaseToken, error: "data.width and data.height are required" });
    return;
  }
  await call(`/queues/jobs/${job.id}/complete`, { leaseToken: job.leaseToken, result: { area: width * height, worker: "node" } });
}

(async () => {
  let done = 0;
  while (!stopping && (maxJobs === "0" || done < Number(maxJobs))) {
    const { jobs } = await call("/queues/jobs/lease", { names: [name], max: 1, leaseMs: 30000, waitMs: 2000 });
    for (const job of jobs) {
      if (stopping) { await call(`/queues/jobs/${job.id}/release`, { leaseToken: job.leaseToken }); continue; }
      await work(job);
      done += 1;
    }
  }
  console.log(JSON.stringify({ done }));
})().catch((error) => { console.error(error.message); process.exit(1); });
