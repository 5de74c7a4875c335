// A real `queueapp serve` for the TypeScript packages' tests: its own SQLite file in a
// temporary folder, its own port on 127.0.0.1, stopped by the test that started it.
"use strict";
const { spawn } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function waitUntilLive(url, child, deadlineMs) {
  const deadline = Date.now() + deadlineMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`queueapp serve exited with ${child.exitCode}`);
    try {
      const answer = await fetch(`${url}/livez`);
      if (answer.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 50));  // a child's readiness: nothing to wait on
  }
  throw new Error(`queueapp serve did not start within ${deadlineMs} ms`);
}

/** Starts `queueapp serve`; `token` (default "test-token") guards it. */
async function startAppliance({ token = "test-token", args = [], env = {} } = {}) {
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), "queueapp-ts-"));
  const db = path.join(folder, "queue.db");
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const log = path.join(folder, "serve.log");
  let child;
  async function start() {
    const out = fs.openSync(log, "a");
    child = spawn(process.env.PYTHON || "python3",
      ["-m", "queueapp", "serve", "--db", db, "--port", String(port), ...args],
      { stdio: ["ignore", out, out], env: { ...process.env, QUEUEAPP_TOKEN: token, ...env } });
    fs.closeSync(out);
    try {
      await waitUntilLive(url, child, 30_000);
    } catch (error) {
      child.kill("SIGKILL");
      throw new Error(`${error.message}\n${fs.readFileSync(log, "utf8")}`);
    }
  }
  function stopped() {
    return new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once("exit", () => resolve())));
  }
  await start();
  return {
    url, token, db, folder,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    /** The appliance's own answer to a request, for checks made around a client. */
    async api(method, route, body) {
      const answer = await fetch(url + route, { method, headers: this.headers, body: body === undefined ? undefined : JSON.stringify(body) });
      const text = await answer.text();
      return { status: answer.status, body: text ? JSON.parse(text) : null };
    },
    async kill() {
      child.kill("SIGKILL");
      await stopped();
    },
    async restart() {
      await this.kill();
      await start();
    },
    async stop() {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        await stopped();
      }
      fs.rmSync(folder, { recursive: true, force: true });
    },
    log: () => fs.readFileSync(log, "utf8"),
  };
}

/** Resolves when `predicate()` holds, checking as the test's events come; rejects after `ms`. */
async function until(predicate, ms = 20_000, what = "condition") {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`${what} not met within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

module.exports = { startAppliance, until, freePort };
