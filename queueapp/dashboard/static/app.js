// queueapp dashboard: every view drawn from the appliance's own HTTP API.
// Text from the server is always set as text (never as HTML), so job data that
// holds markup shows as what it is.

const STATES = ["waiting", "delayed", "blocked", "active", "completed", "failed", "cancelled", "expired"];
const FINISHED = ["completed", "failed", "cancelled", "expired"];
const ACTIONS_BY_STATE = {
  retry: ["failed", "cancelled", "expired"],
  cancel: ["waiting", "delayed", "blocked", "active"],
  promote: ["delayed"],
  delete: ["waiting", "delayed", "blocked", "completed", "failed", "cancelled", "expired"],
};
const VERBS = { retry: "Retry", cancel: "Cancel", promote: "Promote", delete: "Delete" };
const REFRESH_MS = 2000;

// Who the page is (GET /ui/session): a key's roles and queues (null: every queue).
const session = { role: "admin", roles: ["enqueue", "work", "read", "admin"], queues: null, name: "open",
  csrf: null, auth: false };
let pageTimers = [];
let pageStreams = [];  // event streams a page follows, closed when the page changes
const EVENT_TYPES = ["added", "waiting", "delayed", "active", "progress", "completed", "retrying", "failed",
  "cancelled", "stalled", "released", "expired", "removed"];

// Calls ``onEvent`` with each committed transition of ``queue``'s jobs (of ``name``)
// while the page is shown; the browser reconnects by itself, resuming after the last
// event it had (Last-Event-ID). ``onEvent(null)`` when the stream opens: what
// happened before it did is read again.
function follow(queue, name, onEvent) {
  const stream = new EventSource(`/queues/events${qs({ queue, name })}`);
  stream.addEventListener("open", () => onEvent(null));
  for (const type of EVENT_TYPES) {
    stream.addEventListener(type, (message) => onEvent(JSON.parse(message.data)));
  }
  pageStreams.push(stream);
}

// ---------------------------------------------------------------- helpers

function h(tag, props, ...kids) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : String(kid));
  }
  return el;
}

// Puts ``kids`` (nested lists flattened, empties skipped) in place of el's children.
function fill(el, ...kids) {
  el.replaceChildren(...kids.flat(Infinity).filter((k) => k !== null && k !== undefined && k !== false && k !== ""));
}

function svg(tag, attrs, ...kids) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
  for (const kid of kids.flat()) if (kid) el.append(kid instanceof Node ? kid : String(kid));
  return el;
}

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.details = body?.error?.details || [];
  }
}

async function api(method, path, body) {
  // says where a change came from, for the audit trail (not a credential)
  const headers = { Accept: "application/json", "X-Queueapp-Client": "dashboard" };
  if (method !== "GET" && session.csrf) headers["X-CSRF-Token"] = session.csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    location.assign("/ui/login");
    throw new ApiError(401, null);
  }
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// A value as one segment of a URL's path. A browser resolves "." and ".." segments
// away ("/queues/groups/../pause" is "/queues/pause") and encodeURIComponent leaves
// dots alone, so such a value (the appliance refuses them as names and keys; older
// ones may remain) is never put into a path.
function segment(value) {
  const text = String(value);
  if (text === "." || text === "..") throw new Error(`"${text}" cannot stand in a URL's path`);
  return encodeURIComponent(text);
}

function qs(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

// Times in UTC, or in the browser's own zone once the person asks (kept).
const clockPref = { local: localStorage.getItem("queueapp-time") === "local" };

function when(iso) {
  if (!iso) return "—";
  return clockPref.local ? localTime(iso, false) : iso.replace("T", " ").replace(/\.\d+Z$/, "Z");
}

// A time on this browser's clock, its zone said: "2026-12-02 08:15:04 CET".
function localTime(iso, millis) {
  const at = new Date(iso);
  const text = at.toLocaleString("sv-SE", { timeZoneName: "short" });
  if (!millis) return text;
  const [date, time, ...zone] = text.split(" ");
  return `${date} ${time}.${String(at.getMilliseconds()).padStart(3, "0")} ${zone.join(" ")}`;
}

// A time as the clock on the wall of ``zone`` shows it, saying which zone (UTC: as when()).
function inZone(iso, zone) {
  if (!iso) return "—";
  if (!zone || zone === "UTC") return when(iso);
  const parts = new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" }).formatToParts(new Date(iso));
  const part = (type) => parts.find((p) => p.type === type).value;
  return `${part("year")}-${part("month")}-${part("day")} ${part("hour")}:${part("minute")}:${part("second")} ${zone}`;
}

function ago(iso) {
  if (!iso) return "—";
  const seconds = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (Math.abs(seconds) < 90) return `${seconds} s`;
  if (Math.abs(seconds) < 5400) return `${Math.round(seconds / 60)} min`;
  return `${Math.round(seconds / 3600)} h`;
}

function pretty(value) {
  return JSON.stringify(value, null, 2);
}

function badge(text, kind) {
  return h("span", { class: `badge ${kind || text}` }, text);
}

function say(message, good) {
  const status = document.getElementById("status");
  fill(status, message ? h("p", { class: good ? "good" : "" }, message) : "");
  if (message && good) setTimeout(() => fill(status), 2500);
}

function fail(error) {
  if (error instanceof ApiError && error.status === 401) return;
  say(error.message || String(error));
}

function readOnly() {
  return session.role === "read";
}

// An admin of every queue: the keys are theirs to manage.
function keyKeeper() {
  return session.roles.includes("admin") && session.queues === null;
}

// A button that acts: disabled for the read-only token; errors go to the status line.
function actionButton(label, name, act, options = {}) {
  const button = h("button", {
    type: "button", class: options.class, "aria-label": name,
    disabled: readOnly() || options.disabled,
    title: readOnly() ? "read-only: this token or key cannot change anything" : undefined,
  }, label);
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await act();
    } catch (error) {
      fail(error);
    } finally {
      button.disabled = readOnly() || options.disabled;
    }
  });
  return button;
}

function confirmCount(text) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

function every(ms, fn) {
  const timer = setInterval(() => fn().catch(fail), ms);
  pageTimers.push(timer);
}

function link(href, ...kids) {
  return h("a", { href, "data-link": true }, ...kids);
}

function queuePath(queue, tail = "") {
  return `/ui/queues/${segment(queue)}${tail}`;
}

// Runs ``action`` over every job the filters find, page after page, after the
// person has agreed to the count.
async function actOnAll(action, queue, filters, describe) {
  const dry = await api("POST", `/queues/jobs/actions${qs({ queue, ...filters })}`, { action, dryRun: true });
  if (dry.matched === 0) {
    say(`No job to ${action}.`, true);
    return 0;
  }
  const noun = dry.matched === 1 ? "job" : "jobs";
  if (!(await confirmCount(`${VERBS[action]} ${dry.matched.toLocaleString("en")} ${noun}${describe}?`))) return 0;
  let changed = 0;
  let cursor = null;
  do {
    const body = cursor ? { action, cursor } : { action };
    const answer = await api("POST", `/queues/jobs/actions${qs({ queue, ...filters })}`, body);
    changed += answer.changed;
    cursor = answer.nextCursor;
  } while (cursor);
  say(`${VERBS[action]}: ${changed} ${changed === 1 ? "job" : "jobs"} changed.`, true);
  return changed;
}

async function actOnIds(action, queue, ids) {
  if (action === "delete" || (ids.length > 1 && action === "cancel")) {
    const noun = ids.length === 1 ? `job ${ids[0]}` : `${ids.length} jobs`;
    if (!(await confirmCount(`${VERBS[action]} ${noun}? Jobs waiting on ${ids.length === 1 ? "it" : "them"} fail.`))) {
      return 0;
    }
  }
  const answer = await api("POST", `/queues/jobs/actions${qs({ queue })}`, { action, ids });
  say(`${VERBS[action]}: ${answer.changed} ${answer.changed === 1 ? "job" : "jobs"} changed.`, true);
  return answer.changed;
}

// ---------------------------------------------------------------- charts

// A window of the metrics history, drawn by the page itself (SVG, no outside code):
// completed and failed jobs as stacked bars, enqueued as a line, against a time axis
// and a count axis; then processing time (mean and p95) as lines. Each point's
// numbers are its tooltip (an SVG title: hover, or a screen reader's reading).
function chart(points, label, windowName) {
  const W = 640;
  const H = 150;
  const left = 46;
  const bottom = 20;
  const top = 6;
  const plotW = W - left - 6;
  const plotH = H - top - bottom;
  const peak = Math.max(...points.map((p) => Math.max(p.completed + p.failed, p.enqueued)), 0);
  const total = points.reduce((n, p) => n + p.completed, 0);
  const failures = points.reduce((n, p) => n + p.failed, 0);
  const added = points.reduce((n, p) => n + p.enqueued, 0);
  const rate = total + failures ? ((100 * failures) / (total + failures)).toFixed(1) : "0.0";
  const legend = h("figcaption", { class: "legend" }, h("span", { class: "e" }, `${added.toLocaleString("en")} enqueued`),
    h("span", { class: "c" }, `${total.toLocaleString("en")} completed`),
    h("span", { class: "f" }, `${failures.toLocaleString("en")} failed (${rate} %)`));
  if (!points.length || (peak === 0 && points.every((p) => p.meanMs === null))) {
    return h("figure", { class: "chart-box" }, h("p", { class: "muted" }, `Nothing happened in the last ${windowName}.`),
      legend);
  }
  const top1 = niceCeiling(peak);
  const x = (i) => left + (i * plotW) / points.length;
  const y = (v) => top + plotH - (v / top1) * plotH;
  const bar = plotW / points.length;
  const parts = [];
  for (const tick of [0, top1 / 2, top1]) {
    parts.push(svg("line", { class: tick ? "grid" : "axis", x1: left, x2: W - 6, y1: y(tick), y2: y(tick) }),
      svg("text", { class: "tick", x: left - 6, y: y(tick) + 4, "text-anchor": "end" }, compact(tick)));
  }
  const labelEvery = Math.max(1, Math.ceil(points.length / 6));
  points.forEach((p, i) => {
    const xi = x(i);
    const w = Math.max(bar - 1, 0.5);
    const done = plotH * (p.completed / top1);
    const failed = plotH * (p.failed / top1);
    if (done > 0) parts.push(svg("rect", { class: "completed", x: xi, y: y(p.completed), width: w, height: done }));
    if (failed > 0) {
      parts.push(svg("rect", { class: "failed", x: xi, y: y(p.completed + p.failed), width: w, height: failed }));
    }
    if (i % labelEvery === 0) {
      parts.push(svg("text", { class: "tick", x: xi, y: H - 5, "text-anchor": "start" }, clock(p.start, windowName)));
    }
  });
  parts.push(svg("polyline", { class: "enqueued", fill: "none",
    points: points.map((p, i) => `${(x(i) + bar / 2).toFixed(1)},${y(p.enqueued).toFixed(1)}`).join(" ") }));
  // the tooltips: a column over each point, its numbers as its title
  points.forEach((p, i) => parts.push(svg("rect", { class: "hit", x: x(i), y: top, width: bar, height: plotH },
    svg("title", null, pointText(p, windowName)))));
  const latency = latencyChart(points, windowName, left, W);
  return h("figure", { class: "chart-box" },
    svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img",
      "aria-label": `${label}: ${added} enqueued, ${total} completed, ${failures} failed; at most ${peak} a point` },
    parts), latency, legend);
}

// Processing time: mean and p95 per point, in ms, where jobs finished.
function latencyChart(points, windowName, left, W) {
  const H = 90;
  const top = 6;
  const bottom = 18;
  const plotH = H - top - bottom;
  const plotW = W - left - 6;
  const slowest = Math.max(0, ...points.map((p) => p.p95Ms ?? 0), ...points.map((p) => p.meanMs ?? 0));
  if (!slowest) return null;
  const top1 = niceCeiling(slowest);
  const x = (i) => left + ((i + 0.5) * plotW) / points.length;
  const y = (v) => top + plotH - (v / top1) * plotH;
  const line = (key) => points.map((p, i) => (p[key] === null ? null : `${x(i).toFixed(1)},${y(p[key]).toFixed(1)}`))
    .filter(Boolean).join(" ");
  return svg("svg", { class: "chart latency", viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": `Processing time, mean and p95, at most ${compact(slowest)} ms` },
  [0, top1].map((tick) => [svg("line", { class: tick ? "grid" : "axis", x1: left, x2: W - 6, y1: y(tick), y2: y(tick) }),
    svg("text", { class: "tick", x: left - 6, y: y(tick) + 4, "text-anchor": "end" }, `${compact(tick)} ms`)]),
  svg("polyline", { class: "p95", fill: "none", points: line("p95Ms") }),
  svg("polyline", { class: "mean", fill: "none", points: line("meanMs") }),
  // a dot at each point, so that a lone minute with finished jobs is seen too
  points.flatMap((p, i) => (p.meanMs === null ? [] : [
    svg("circle", { class: "p95", cx: x(i), cy: y(p.p95Ms), r: 2 }),
    svg("circle", { class: "mean", cx: x(i), cy: y(p.meanMs), r: 2 })])),
  svg("text", { class: "tick", x: W - 8, y: H - 4, "text-anchor": "end" }, "processing time: p95 and mean"));
}

function pointText(p, windowName) {
  const times = p.meanMs === null ? "" : `, ${p.meanMs} ms mean, ${p.p95Ms} ms p95`;
  return `${clock(p.start, windowName)}: ${p.enqueued} enqueued, ${p.completed} completed, ${p.failed} failed${times}`;
}

// A point's time as its window reads it: the hour and minute, or the day and hour.
function clock(iso, windowName) {
  const at = new Date(iso);
  const two = (n) => String(n).padStart(2, "0");
  const hm = `${two(at.getUTCHours())}:${two(at.getUTCMinutes())}`;
  return windowName === "7d" ? `${at.toUTCString().slice(0, 3)} ${hm}` : hm;
}

function niceCeiling(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (value <= step * power) return step * power;
  return 10 * power;
}

function compact(n) {
  if (n >= 1e6) return `${+(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${+(n / 1e3).toFixed(1)}k`;
  return String(+n.toFixed(1));
}

async function historyChart(queue, windowName) {
  const history = await api("GET", `/queues/metrics/history${qs({ queue, window: windowName })}`);
  return chart(history.points, `Throughput of ${queue} over ${windowName}`, windowName);
}

// ---------------------------------------------------------------- overview

async function overview(main) {
  const whole = h("section", { class: "panel", "aria-label": "Every queue" });
  fill(main, h("h1", null, "Queues"), whole, h("div", { class: "cards", id: "queue-cards" }));
  const charts = new Map();
  const draw = async () => {
    const { queues } = await api("GET", "/queues");
    const cards = document.getElementById("queue-cards");
    if (!cards) return;
    if (!queues.length) {
      fill(cards, h("p", { class: "muted" }, "No queue yet: add a job and its queue appears here."));
      return;
    }
    fill(cards, queues.slice(0, 100).map((q) => queueCard(q, charts)));
  };
  const drawCharts = async () => {
    const { queues } = await api("GET", "/queues");
    const histories = [];
    for (const q of queues.slice(0, 100)) {
      const history = await api("GET", `/queues/metrics/history${qs({ queue: q.name, window: "1h" })}`);
      histories.push(history.points);
      charts.set(q.name, chart(history.points, `Throughput of ${q.name} over 1h`, "1h"));
    }
    if (histories.length > 1) {
      fill(whole, h("h2", null, "Every queue, the last hour"),
        chart(summed(histories), "Throughput of every queue over 1h", "1h"));
    }
    await draw();
  };
  await drawCharts();
  every(REFRESH_MS, draw);
  every(30000, drawCharts);
}

// The queues' histories as one: counts added point by point; the mean weighted by
// the jobs that finished; the p95 the slowest queue's (an upper bound of the whole's).
function summed(histories) {
  return histories[0].map((first, i) => {
    const points = histories.map((points) => points[i]).filter(Boolean);
    const add = (key) => points.reduce((n, p) => n + (p[key] || 0), 0);
    const timed = points.filter((p) => p.meanMs !== null);
    const weight = timed.reduce((n, p) => n + p.completed + p.failed, 0);
    return {
      start: first.start, enqueued: add("enqueued"), completed: add("completed"), failed: add("failed"),
      meanMs: timed.length ? Math.round(timed.reduce((n, p) => n + p.meanMs * (p.completed + p.failed), 0)
        / Math.max(weight, 1)) : null,
      p95Ms: timed.length ? Math.max(...timed.map((p) => p.p95Ms)) : null,
    };
  });
}

function queueCard(q, charts) {
  return h("section", { class: "panel card", "aria-label": `Queue ${q.name}` },
    h("h2", null, link(queuePath(q.name), q.name), badge(q.status), q.paused ? badge("paused") : null),
    h("div", { class: "counts" }, STATES.map((s) => h("div", null, h("span", { class: "muted" }, s),
      h("strong", null, (q.counts[s] || 0).toLocaleString("en"))))),
    q.issues.length ? h("ul", { class: "issues" }, q.issues.map((i) => h("li", null, i))) : null,
    charts.get(q.name) || null,
    h("div", { class: "row end" }, pauseButton(q.name, q.paused)));
}

function pauseButton(queue, paused) {
  const verb = paused ? "Resume" : "Pause";
  return actionButton(verb, `${verb} queue ${queue}`, async () => {
    await api("POST", `/queues/${paused ? "resume" : "pause"}${qs({ queue })}`);
    say(`${queue} ${paused ? "resumed" : "paused"}.`, true);
    await route();
  }, { class: paused ? "" : "quiet" });
}

// ---------------------------------------------------------------- one queue

async function queuePage(main, queue, params) {
  const filters = {
    state: params.get("state") || "", name: params.get("name") || "", q: params.get("q") || "",
    from: params.get("from") || "", to: params.get("to") || "", order: params.get("order") || "desc",
    // the page shown: in the URL, so that Back returns to the page before and a page can be shared
    cursor: params.get("cursor") || "", page: Number(params.get("page")) || 1,
  };
  // A finished state's pages run by finish time, and the range bounds it (docs/api.md).
  const whenWord = FINISHED.includes(filters.state) ? "Finished" : "Created";
  const { queues } = await api("GET", "/queues");
  const known = queues.find((q) => q.name === queue);
  if (!known) {
    fill(main, h("h1", null, `Queue ${queue}`), h("p", { class: "panel", role: "note" },
      `There is no queue named "${queue}": no job, schedule or setting has named it. `,
      link("/ui/", "See every queue"), "."));
    return;
  }
  const info = known;
  const selected = new Set();
  const chips = h("div", { class: "chips", role: "group", "aria-label": "Filter by state" });
  const table = h("div", { class: "panel", id: "jobs" });
  const chartBox = h("div");
  const searchError = h("p", { class: "field-error", id: "q-error", role: "alert" });

  const apply = (changes) => {
    // a change of filters starts again at the first page
    const paging = "cursor" in changes ? {} : { cursor: "", page: "" };
    const next = { ...filters, ...paging, ...changes };
    if (next.page === 1) next.page = "";
    history.pushState(null, "", queuePath(queue) + qs(next));
    route();
  };
  const drawChips = (counts) => {
    fill(chips, 
      h("button", { type: "button", "aria-pressed": String(!filters.state), onclick: () => apply({ state: "" }) }, "all"),
      STATES.map((s) => h("button", {
        type: "button", "aria-pressed": String(filters.state === s), onclick: () => apply({ state: s }),
      }, `${s} (${(counts[s] || 0).toLocaleString("en")})`)));
  };
  drawChips(info.counts);

  const form = h("form", { class: "form-grid", "aria-label": "Search jobs" },
    h("label", null, "Job name", h("input", { name: "name", value: filters.name, maxlength: 128 })),
    h("label", null, "Search", h("input", {
      name: "q", value: filters.q, maxlength: 500, "aria-describedby": "q-error",
      placeholder: 'id, jobId key, data.userId = 42, data.to contains "example.com"',
    }), searchError),
    h("label", null, `${whenWord} from (UTC)`, h("input", { name: "from", type: "datetime-local", value: filters.from })),
    h("label", null, `${whenWord} to (UTC)`, h("input", { name: "to", type: "datetime-local", value: filters.to })),
    h("label", null, "Order", h("select", { name: "order" },
      h("option", { value: "desc", selected: filters.order === "desc" }, "newest first"),
      h("option", { value: "asc", selected: filters.order === "asc" }, "oldest first"))),
    h("div", { class: "row" }, h("button", { type: "submit" }, "Search"),
      h("button", { type: "button", class: "quiet", onclick: () => apply({ name: "", q: "", from: "", to: "" }) },
        "Clear")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    apply(Object.fromEntries(["name", "q", "from", "to", "order"].map((k) => [k, data.get(k) || ""])));
  });

  const apiFilters = () => ({
    queue, state: filters.state, name: filters.name, q: filters.q,
    from: filters.from ? `${filters.from}Z` : "", to: filters.to ? `${filters.to}Z` : "",
  });
  const PAGE = 50;
  const drawJobs = async () => {
    let page;
    try {
      page = await api("GET", `/queues/jobs${qs({ ...apiFilters(), order: filters.order, limit: 50,
        cursor: filters.cursor })}`);
      searchError.textContent = "";
    } catch (error) {
      if (error.status === 400) {
        searchError.textContent = error.message;
        fill(table, h("p", { class: "muted" }, "Fix the search to see jobs."));
        return;
      }
      throw error;
    }
    fill(table, jobsTable(page.jobs, queue, selected, drawJobs),
      h("div", { class: "row" },
        h("button", { type: "button", class: "quiet", disabled: filters.page === 1,
          onclick: () => history.back() }, "Previous page"),
        h("button", { type: "button", class: "quiet", disabled: !page.nextCursor,
          onclick: () => apply({ cursor: page.nextCursor, page: filters.page + 1 }) }, "Next page"),
        h("span", { class: "muted", "aria-label": "Shown" }, shown(filters, page.jobs.length, PAGE, info.counts)),
        page.scanned !== undefined ? h("span", { class: "muted" }, `${page.scanned.toLocaleString("en")} rows read`)
          : null));
  };
  // Actions only where they can apply to the state shown; "all matching" says how many
  // when the state alone chooses (its count), and is a plain button on an unfiltered view.
  const applies = Object.keys(VERBS).filter((a) => !filters.state || ACTIONS_BY_STATE[a].includes(filters.state));
  const narrowed = Boolean(filters.state || filters.name || filters.q || filters.from || filters.to);
  const onlyState = filters.state && !(filters.name || filters.q || filters.from || filters.to);
  const matching = onlyState ? `all ${(info.counts[filters.state] || 0).toLocaleString("en")}` : "all matching";
  const bulk = h("div", { class: "row", "aria-label": "Act on jobs" },
    applies.map((action) => actionButton(`${VERBS[action]} selected`, `${VERBS[action]} selected jobs`,
      async () => {
        if (!selected.size) return say("Select jobs first.");
        await actOnIds(action, queue, [...selected]);
        selected.clear();
        await drawJobs();
      }, { class: action === "delete" ? "danger" : "quiet" })),
    applies.map((action) => actionButton(`${VERBS[action]} ${matching}`, `${VERBS[action]} all matching jobs`,
      async () => {
        await actOnAll(action, queue, apiFilters(), " matching these filters");
        await drawJobs();
      }, { class: action === "delete" && narrowed ? "danger" : action === "delete" ? "danger-outline" : "" })));

  const windowPicker = h("div", { class: "chips", role: "group", "aria-label": "Chart window" });
  const drawChart = async (name) => {
    fill(windowPicker, ...["1h", "24h", "7d"].map((w) => h("button", {
      type: "button", "aria-pressed": String(w === name), onclick: () => drawChart(w).catch(fail),
    }, w)));
    fill(chartBox, await historyChart(queue, name));
  };

  fill(main, 
    h("div", { class: "row" }, h("h1", null, `Queue ${queue}`), info.paused ? badge("paused") : null,
      pauseButton(queue, info.paused)),
    await whyWaiting(queue, info),
    h("section", { class: "panel" }, h("h2", null, "Throughput and failures"), windowPicker, chartBox),
    h("section", { class: "panel" }, chips, form, bulk),
    table);
  await Promise.all([drawJobs(), drawChart("1h")]);
  const refresh = async () => {
    const fresh = (await api("GET", "/queues")).queues.find((q) => q.name === queue);
    if (fresh) drawChips(fresh.counts);
    if (!filters.cursor && !document.querySelector("#jobs input:checked")) await drawJobs();
  };
  every(REFRESH_MS, refresh);
}

// "51–100 of 3,479": the page's place, and the total when the state alone chooses.
function shown(filters, count, size, counts) {
  if (!count) return "";
  const first = (filters.page - 1) * size + 1;
  const onlyState = filters.state && !(filters.name || filters.q || filters.from || filters.to);
  const total = onlyState ? ` of ${(counts[filters.state] || 0).toLocaleString("en")}` : "";
  return `${first.toLocaleString("en")}–${(first + count - 1).toLocaleString("en")}${total}`;
}

// Why jobs wait although they are due: the queue paused, or their group keys paused
// or at their limits (flow control); said on the queue's page, not only on Groups.
async function whyWaiting(queue, info) {
  const waiting = info.counts.waiting || 0;
  if (!waiting) return null;
  const reasons = [];
  if (info.paused) reasons.push("the queue is paused: no job starts until it is resumed");
  const view = await api("GET", `/queues/groups${qs({ queue, limit: 200 })}`);
  const held = view.keys.filter((k) => k.waiting && k.paused);
  const full = view.keys.filter((k) => k.waiting && !k.paused && k.limits.concurrency && k.active >= k.limits.concurrency);
  const count = (keys) => keys.reduce((n, k) => n + k.waiting, 0).toLocaleString("en");
  if (held.length) reasons.push(`${held.length} group ${held.length === 1 ? "key is" : "keys are"} paused (${count(held)} jobs wait in them)`);
  if (full.length) {
    reasons.push(`${full.length} group ${full.length === 1 ? "key is" : "keys are"} at their limit of jobs at once (${count(full)} jobs wait in them)`);
  }
  const rated = view.keys.filter((k) => k.waiting && !k.paused && k.limits.rate);
  if (rated.length && !reasons.length) reasons.push(`${rated.length} group ${rated.length === 1 ? "key starts" : "keys start"} at most a number of jobs per period`);
  if (!reasons.length) return null;
  return h("section", { class: "panel", role: "note", "aria-label": "Why jobs wait" },
    h("strong", null, `${waiting.toLocaleString("en")} jobs wait: `), reasons.join("; "), ". ",
    link(queuePath(queue, "/groups"), "Groups"));
}

function jobActions(job, queue, after) {
  return Object.keys(VERBS).filter((a) => a !== "delete" && ACTIONS_BY_STATE[a].includes(job.state))
    .map((action) => actionButton(VERBS[action], `${VERBS[action]} job ${job.id}`, async () => {
      await api(action === "cancel" ? "DELETE" : "POST",
        action === "cancel" ? `/queues/jobs/${job.id}` : `/queues/jobs/${job.id}/${action}`);
      say(`${VERBS[action]}: job ${job.id}.`, true);
      await after();
    }, { class: "quiet" }));
}

function jobsTable(jobs, queue, selected, after) {
  if (!jobs.length) return h("p", { class: "muted" }, "No job matches.");
  // an error column where some job has one (the failed list, a retried job's)
  const errors = jobs.some((job) => job.error);
  return h("table", null,
    h("thead", null, h("tr", null, h("th", null, h("input", { type: "checkbox", "aria-label": "Select every job shown",
      checked: jobs.every((job) => selected.has(job.id)), onchange: (e) => {
        for (const job of jobs) (e.target.checked ? selected.add(job.id) : selected.delete(job.id));
        for (const box of e.target.closest("table").querySelectorAll("tbody input[type=checkbox]")) {
          box.checked = e.target.checked;
        }
      } })), h("th", null, "id"),
      h("th", null, "name"), h("th", null, "state"), h("th", { class: "num hide-narrow" }, "priority"),
      h("th", { class: "hide-narrow" }, "group"),
      h("th", { class: "num hide-narrow" }, "attempts"), h("th", { class: "hide-narrow" }, "created"),
      h("th", { class: "hide-narrow" }, "finished"), errors ? h("th", null, "last error") : null, h("th", null, ""))),
    h("tbody", null, jobs.map((job) => h("tr", null,
      h("td", null, h("input", { type: "checkbox", "aria-label": `Select job ${job.id}`, checked: selected.has(job.id),
        onchange: (e) => (e.target.checked ? selected.add(job.id) : selected.delete(job.id)) })),
      h("td", null, link(`/ui/jobs/${job.id}`, job.id)),
      h("td", null, job.name), h("td", null, badge(job.state), job.state === "delayed"
        ? h("div", { class: "muted", title: job.runAt }, `runs in ${span(Math.max(0, Date.parse(job.runAt) - Date.now()))}`)
        : null),
      h("td", { class: "num hide-narrow" }, job.priority),
      h("td", { class: "hide-narrow" }, job.options.group ?? "—"),
      h("td", { class: "num hide-narrow" }, `${job.attemptsMade}/${job.attempts}`),
      h("td", { class: "hide-narrow" }, when(job.createdAt)),
      h("td", { class: "hide-narrow" }, when(job.finishedAt)),
      errors ? h("td", { class: job.error ? "error" : "muted", title: job.error || "" },
        job.error ? (job.error.length > 120 ? `${job.error.slice(0, 119)}…` : job.error) : "—") : null,
      h("td", null, h("div", { class: "row" }, jobActions(job, queue, after)))))));
}

// ---------------------------------------------------------------- one job

async function jobPage(main, id) {
  // the job's log, read on from the last line seen at each refresh
  const log = { lines: [], lastSeq: 0 };
  const openTraces = new Set();  // the attempts whose stack trace is open stay open across refreshes
  let shownJob = null;
  const draw = async () => {
    let job;
    let dependents;
    try {
      job = await api("GET", `/queues/jobs/${id}`);
      shownJob = job;
      navigation(job.queue, location.pathname);  // the job's queue's tabs stay at hand
      dependents = (await api("GET", `/queues/jobs/${id}/dependents`)).jobs;
      const more = await api("GET", `/queues/jobs/${id}/logs${qs({ after: log.lastSeq })}`);
      log.lines = log.lines.concat(more.lines).slice(-1000);
      log.lastSeq = more.lastSeq;
    } catch (error) {
      if (error.status === 404) {
        fill(main, h("h1", null, `Job ${id}`), h("p", { class: "muted" }, "No such job (deleted or cleaned)."));
        return false;
      }
      throw error;
    }
    const verbs = Object.keys(VERBS).map((action) => actionButton(VERBS[action], `${VERBS[action]} job ${id}`,
      async () => {
        if (action === "delete" || (action === "cancel" && dependents.length)) {
          // say what else changes: the jobs waiting on this one fail with it
          const waiting = dependents.length ? ` ${dependents.length} ${dependents.length === 1 ? "job waits" : "jobs wait"}`
            + ` on it (${dependents.slice(0, 10).map((d) => d.id).join(", ")}${dependents.length > 10 ? ", ..." : ""}):`
            + ` ${dependents.length === 1 ? "it fails" : "they fail"} with it.` : "";
          if (!(await confirmCount(`${VERBS[action]} job ${id}?${waiting}`))) return;
        }
        if (action === "delete") {
          await api("POST", `/queues/jobs/actions${qs({ queue: job.queue })}`, { action: "delete", ids: [id] });
          say(`Deleted job ${id}.`, true);
          history.pushState(null, "", queuePath(job.queue));
          return route();
        }
        await api(action === "cancel" ? "DELETE" : "POST",
          action === "cancel" ? `/queues/jobs/${id}` : `/queues/jobs/${id}/${action}`);
        say(`${VERBS[action]}: job ${id}.`, true);
        await draw();
      }, { disabled: !ACTIONS_BY_STATE[action].includes(job.state), class: action === "delete" ? "danger" : "" }));
    fill(main, 
      h("h1", null, `Job ${job.id} `, badge(job.state)),
      h("div", { class: "row" }, verbs),
      h("section", { class: "panel" }, h("dl", { class: "fields" },
        [["queue", link(queuePath(job.queue), job.queue)], ["name", job.name], ["state", job.state],
          ["priority", job.priority], ["attempts", `${job.attemptsMade} of ${job.attempts}`],
          ["worker", job.worker || "—"],
          ["jobId key", job.jobId || "—"], ["progress", typeof job.progress === "number" ? `${job.progress} %`
            : pretty(job.progress)], ["last error", job.error || "—"], ...flowFields(job),
          ...(dependents.length ? [["dependents", h("span", null, dependents.map((d, i) =>
            [i ? ", " : "", link(`/ui/jobs/${d.id}`, d.id), ` (${d.name}, ${d.state})`]))]] : [])]
          .map(([k, v]) => [h("dt", null, k), h("dd", null, v)]))),
      h("section", { class: "panel", "aria-label": "Timeline" }, h("h2", null, "Timeline"), h("ul", { class: "timeline" },
        [["created", job.createdAt], ["due", job.runAt], ["started", job.startedAt], ["finished", job.finishedAt]]
          .map(([k, v]) => h("li", null, h("span", { class: "muted" }, `${k}: `), exact(v)))),
        h("dl", { class: "fields" }, durations(job).map(([k, v]) => [h("dt", null, k), h("dd", null, v)]))),
      h("section", { class: "panel" }, h("h2", null, "Data"), h("pre", null, pretty(job.data))),
      Object.keys(job.options || {}).length
        ? h("section", { class: "panel" }, h("h2", null, "Options"), h("pre", null, pretty(job.options))) : null,
      job.result !== null && job.result !== undefined
        ? h("section", { class: "panel" }, h("h2", null, "Result"), h("pre", null, pretty(job.result))) : null,
      h("section", { class: "panel" }, h("h2", null, `Attempts' errors (${job.errors.length})`),
        job.errors.length ? h("table", null, h("tbody", null, job.errors.map((e) => h("tr", null,
          h("td", { class: "num" }, `#${e.attempt}`),
          h("td", null, e.startedAt ? `${when(e.startedAt)} → ${when(e.at)}` : when(e.at),
            e.startedAt ? h("div", { class: "muted" }, `ran ${span(Date.parse(e.at) - Date.parse(e.startedAt))}`) : null,
            e.worker ? h("div", { class: "muted" }, `on ${e.worker}`) : null),
          h("td", null, h("pre", null, e.message), e.stack ? h("details", { class: "stack", open: openTraces.has(e.attempt),
            ontoggle: (event) => (event.target.open ? openTraces.add(e.attempt) : openTraces.delete(e.attempt)) },
            h("summary", null, `Stack trace of attempt ${e.attempt}`), h("pre", null, e.stack)) : null)))))
          : h("p", { class: "muted" }, "None.")),
      h("section", { class: "panel", "aria-label": "Log" }, h("h2", null, `Log (${log.lines.length} lines)`),
        log.lines.length ? h("pre", { class: "log" }, log.lines.map((l) => `${when(l.at)}  ${l.line}\n`).join(""))
          : h("p", { class: "muted" }, "Nothing logged.")));
    return !FINISHED.includes(job.state);
  };
  if (await draw()) {
    // the job's moves as they are committed; its log, which sends no event, while it runs
    follow(shownJob.queue, shownJob.name, (event) => { if (!event || event.jobId === id) draw().catch(fail); });
    every(REFRESH_MS, async () => { if (shownJob.state === "active") await draw(); });
    every(30000, async () => { await draw(); });
  }
}

// A time to the millisecond, with how long ago (or how soon).
function exact(iso) {
  if (!iso) return "—";
  const since = Date.now() - Date.parse(iso);
  const shown = clockPref.local ? localTime(iso, true) : iso.replace("T", " ");
  return `${shown} (${since >= 0 ? `${span(since)} ago` : `in ${span(-since)}`})`;
}

// How long the job waited and ran: from due to started, from started to finished
// (or to now while it runs), in words.
function durations(job) {
  const ms = (a, b) => Date.parse(b) - Date.parse(a);
  const rows = [];
  // a job back in line keeps its last attempt's start: that attempt's wait is not this one's
  if (!job.startedAt || ["waiting", "delayed", "blocked"].includes(job.state)) return rows;
  rows.push(["waited", span(Math.max(0, ms(job.runAt, job.startedAt)))]);
  if (job.startedAt && job.finishedAt) rows.push(["ran", span(ms(job.startedAt, job.finishedAt))]);
  else if (job.startedAt && job.state === "active") rows.push(["running for", span(Date.now() - Date.parse(job.startedAt))]);
  return rows;
}

function span(ms) {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
  return `${Math.floor(ms / 3_600_000)} h ${Math.round((ms % 3_600_000) / 60_000)} min`;
}

// What flow control says of a job: what it waits for, its unique key, its expiry,
// where its outcome goes (each row only when the job has it).
function flowFields(job) {
  const o = job.options || {};
  const rows = [];
  if (o.group) rows.push(["group", link(queuePath(job.queue, "/groups"), o.group)]);
  if (o.dependsOn) {
    rows.push(["depends on", h("span", null, o.dependsOn.map((id, i) => [i ? ", " : "", link(`/ui/jobs/${id}`, id)]),
      o.allowDependencyFailure ? " (runs even if one fails)" : "")]);
  }
  if (o.unique) rows.push(["unique key", `${o.unique.key} (${o.unique.mode})`]);
  if (o.expireInMs) rows.push(["expires", when(new Date(Date.parse(job.createdAt) + o.expireInMs).toISOString())]);
  if (o.callbackUrl) rows.push(["callback", o.callbackUrl]);
  return rows;
}

// ---------------------------------------------------------------- failures

async function failedPage(main, queue) {
  const list = h("div");
  fill(main, h("h1", null, `Failures in ${queue}`), list);
  const draw = async () => {
    const { groups } = await api("GET", `/queues/jobs/failed/groups${qs({ queue })}`);
    if (!groups.length) return fill(list, h("p", { class: "muted" }, "No failed job."));
    fill(list, ...groups.map((g) => failureGroup(queue, g, draw)));
  };
  await draw();
}

function failureGroup(queue, group, redraw) {
  // a group by fingerprint, or (failed before groups were kept) by its exact message
  const filters = group.errorGroup ? { state: "failed", errorGroup: group.errorGroup }
    : { state: "failed", error: group.error ? group.error.slice(0, 1000) : undefined };
  const jobsBox = h("div");
  const selected = new Set();
  const showJobs = async () => {
    const page = await api("GET", `/queues/jobs${qs({ queue, ...filters, order: "desc", limit: 50 })}`);
    fill(jobsBox, jobsTable(page.jobs, queue, selected, redraw),
      h("div", { class: "row" },
        actionButton("Retry selected", "Retry selected jobs", async () => {
          await actOnIds("retry", queue, [...selected]);
          await redraw();
        }),
        actionButton("Delete selected", "Delete selected jobs", async () => {
          await actOnIds("delete", queue, [...selected]);
          await redraw();
        }, { class: "danger" })));
  };
  const describe = ` failed with "${(group.fingerprint || group.error || "").slice(0, 80)}"`;
  return h("section", { class: "panel", "aria-label": `Failure ${group.fingerprint || group.error}` },
    h("pre", null, group.fingerprint || group.error || "(no message)"),
    h("dl", { class: "fields" },
      group.fingerprint && group.fingerprint !== group.error ? [h("dt", null, "example"), h("dd", null, group.error)] : null,
      h("dt", null, "jobs"), h("dd", null, group.count.toLocaleString("en")),
      h("dt", null, "first seen"), h("dd", null, when(group.firstSeen)),
      h("dt", null, "last seen"), h("dd", null, when(group.lastSeen)),
      h("dt", null, "job names"), h("dd", null, group.names.join(", "))),
    h("div", { class: "row" },
      h("button", { type: "button", class: "quiet", onclick: () => showJobs().catch(fail) }, "Show jobs"),
      // A group without a message cannot be told apart by it: act on its jobs one by one.
      (group.errorGroup || group.error) && actionButton(`Retry all ${group.count}`, `Retry all ${group.count} jobs of this failure`, async () => {
        await actOnAll("retry", queue, filters, describe);
        await redraw();
      }),
      (group.errorGroup || group.error) && actionButton(`Delete all ${group.count}`, `Delete all ${group.count} jobs of this failure`, async () => {
        await actOnAll("delete", queue, filters, describe);
        await redraw();
      }, { class: "danger" })),
    jobsBox);
}

// ---------------------------------------------------------------- schedules

async function schedulesPage(main, queue) {
  const list = h("div", { class: "panel" });
  const draw = async () => {
    const { schedules } = await api("GET", `/queues/schedules${qs({ queue })}`);
    const outcomes = await Promise.all(schedules.map((s) => (s.lastJobId
      ? api("GET", `/queues/jobs/${s.lastJobId}`).then((j) => j.state).catch(() => "gone") : null)));
    if (!schedules.length) return fill(list, h("p", { class: "muted" }, "No schedule in this queue."));
    fill(list, h("table", null,
      h("thead", null, h("tr", null, ["name", "rule", "next runs", "last run", "state", ""].map((t) => h("th", null, t)))),
      h("tbody", null, schedules.map((s, i) => h("tr", null,
        h("td", null, h("strong", null, s.name), h("div", { class: "muted" }, `job ${s.jobName}`)),
        h("td", null, s.description, h("div", { class: "muted" },
          h("code", null, s.cron ?? `every ${s.everyMs} ms`), s.cron ? ` (${s.timezone})` : null)),
        h("td", null, s.upcoming.length ? h("ul", { class: "timeline" }, s.upcoming.map((t) =>
          h("li", { title: when(t) }, inZone(t, s.timezone)))) : "—"),
        h("td", null, when(s.lastRunAt), s.lastJobId ? h("div", null, link(`/ui/jobs/${s.lastJobId}`,
          `job ${s.lastJobId}`), " ", badge(outcomes[i])) : null),
        h("td", null, s.enabled ? badge("enabled", "healthy") : badge("paused")),
        h("td", null, h("div", { class: "row" },
          actionButton(s.enabled ? "Pause" : "Resume", `${s.enabled ? "Pause" : "Resume"} schedule ${s.name}`,
            async () => {
              await api("POST", `/queues/schedules/${segment(s.name)}/${s.enabled ? "pause" : "resume"}${qs({ queue })}`);
              await draw();
            }, { class: "quiet" }),
          actionButton("Run now", `Run now schedule ${s.name}`, async () => {
            const job = await api("POST", `/queues/schedules/${segment(s.name)}/run${qs({ queue })}`);
            say(`Schedule ${s.name} ran: job ${job.id}.`, true);
            await draw();
          }, { class: "quiet" }),
          actionButton("Delete", `Delete schedule ${s.name}`, async () => {
            if (!(await confirmCount(`Delete schedule ${s.name}? Its jobs stay.`))) return;
            await api("DELETE", `/queues/schedules/${segment(s.name)}${qs({ queue })}`);
            await draw();
          }, { class: "danger" }))))))));
  };
  fill(main, h("h1", null, `Schedules of ${queue}`), list, scheduleForm(queue, draw));
  await draw();
  every(10000, draw);
}

function scheduleForm(queue, after) {
  const fields = ["name", "jobName", "cron", "everyMs", "timezone", "data"];
  const errors = Object.fromEntries(fields.map((f) => [f, h("p", { class: "field-error", id: `err-${f}`, role: "alert" })]));
  const input = (name, label, props) => h("label", null, label,
    h("input", { name, "aria-describedby": `err-${name}`, ...props }), errors[name]);
  const general = h("p", { class: "field-error", role: "alert" });
  const form = h("form", { class: "form-grid", "aria-label": "New schedule" },
    input("name", "Name", { required: true, maxlength: 128, placeholder: "nightly-report" }),
    input("jobName", "Job name (default: the name)", { maxlength: 128 }),
    input("cron", "Cron (minute hour day month weekday)", { maxlength: 200, placeholder: "0 9 * * 1-5" }),
    input("everyMs", "Or every (ms)", { inputmode: "numeric", placeholder: "60000" }),
    input("timezone", "Time zone", { value: "UTC", maxlength: 64 }),
    h("label", { class: "wide" }, "Data (JSON object)", h("textarea", { name: "data", "aria-describedby": "err-data" }, "{}"),
      errors.data),
    h("div", { class: "row wide" }, h("button", { type: "submit", disabled: readOnly() }, "Create schedule"), general));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const e of Object.values(errors)) e.textContent = "";
    general.textContent = "";
    const values = new FormData(form);
    const body = { name: values.get("name"), timezone: values.get("timezone") || "UTC" };
    if (values.get("jobName")) body.jobName = values.get("jobName");
    if (values.get("cron")) body.cron = values.get("cron");
    if (values.get("everyMs")) body.everyMs = Number(values.get("everyMs"));
    try {
      body.data = JSON.parse(values.get("data") || "{}");
    } catch {
      errors.data.textContent = "not JSON";
      return;
    }
    try {
      await api("POST", `/queues/schedules${qs({ queue })}`, body);
      say(`Schedule ${body.name} saved.`, true);
      form.reset();
      await after();
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 400) return fail(error);
      let placed = false;
      for (const d of error.details) {
        const field = String(d.field || "").split(".")[0];
        if (errors[field]) {
          errors[field].textContent = d.message;
          placed = true;
        }
      }
      if (!placed) general.textContent = error.message;
    }
  });
  return h("section", { class: "panel" }, h("h2", null, "New schedule"), form);
}

// ---------------------------------------------------------------- workers

async function workersPage(main, queue) {
  const box = h("div", { class: "panel" });
  fill(main, h("h1", null, `Active jobs in ${queue}`), box);
  const draw = async () => {
    const { jobs } = await api("GET", `/queues/jobs/running${qs({ queue })}`);
    if (!jobs.length) return fill(box, h("p", { class: "muted" }, "No job is running."));
    fill(box, h("table", null,
      h("thead", null, h("tr", null, ["job", "name", "runs", "started", "heartbeat", "lease expires", ""]
        .map((t) => h("th", null, t)))),
      h("tbody", null, jobs.map((j) => h("tr", { class: j.stuck ? "stuck" : "" },
        h("td", null, link(`/ui/jobs/${j.id}`, j.id)), h("td", null, j.name),
        h("td", null, j.inProcess ? "in the appliance" : `leased by ${j.worker || "a worker"}`),
        h("td", null, `${ago(j.startedAt)} ago`), h("td", null, `${ago(j.heartbeatAt)} ago`),
        h("td", null, j.leaseExpiresAt ? when(j.leaseExpiresAt) : "—"),
        h("td", null, j.stuck ? badge("stuck", "critical") : null,
          actionButton("Cancel", `Cancel job ${j.id}`, async () => {
            await api("DELETE", `/queues/jobs/${j.id}`);
            await draw();
          }, { class: "quiet" })))))));
  };
  await draw();
  // a job starting or ending redraws the list (at most every 300 ms); heartbeats and
  // leases' ages move by themselves, read every few seconds
  let pending = false;
  follow(queue, undefined, (event) => {
    if (pending || (event && !["active", "completed", "failed", "retrying", "cancelled", "stalled", "released"].includes(event.type))) return;
    pending = true;
    setTimeout(() => { pending = false; draw().catch(fail); }, 300);
  });
  every(5000, draw);
}

// ---------------------------------------------------------------- groups

function limitsText(limits) {
  const parts = [];
  if (limits.concurrency) parts.push(`${limits.concurrency} at once`);
  if (limits.rate) parts.push(`${limits.rate.max} per ${period(limits.rate.perMs)}`);
  return parts.length ? parts.join(", ") : "no limit";
}

// A period in the largest unit that says it exactly: 60000 -> "1 min", 1500 -> "1500 ms".
function period(ms) {
  for (const [size, unit] of [[86_400_000, "d"], [3_600_000, "h"], [60_000, "min"], [1000, "s"]]) {
    if (ms % size === 0) return `${ms / size} ${unit}`;
  }
  return `${ms} ms`;
}

async function groupsPage(main, queue) {
  const box = h("div", { class: "panel" });
  const about = h("p", null);
  fill(main, h("h1", null, `Groups of ${queue}`), about, groupPolicyForm(queue, () => draw()), box);
  const keyPath = (key, tail = "") => `/queues/groups/${segment(key)}${tail}${qs({ queue })}`;
  const draw = async () => {
    const view = await api("GET", `/queues/groups${qs({ queue, limit: 200 })}`);
    fill(about, `Every key: ${limitsText(view.policy)}. Priority aging: `,
      view.aging ? `one level per ${period(view.aging.everyMs)} waited, at most ${view.aging.maxLevels}.` : "off.",
      ` ${view.totalKeys} keys.`);
    if (!view.keys.length) return fill(box, h("p", { class: "muted" }, "No job of this queue has a group."));
    fill(box, h("table", null,
      h("thead", null, h("tr", null, ["key", "limits", "active", "waiting", "paused", ""]
        .map((t) => h("th", { class: ["active", "waiting"].includes(t) ? "num" : "" }, t)))),
      // the most waiting first; keys alike in that in their natural order (acct-2 before acct-10)
      h("tbody", null, [...view.keys].sort((a, b) => b.waiting - a.waiting
        || a.key.localeCompare(b.key, "en", { numeric: true })).map((k) => h("tr", null,
        h("td", null, k.key), h("td", null, limitsText(k.limits), k.custom ? " (its own)" : ""),
        h("td", { class: "num" }, k.active), h("td", { class: "num" }, k.waiting),
        h("td", null, k.paused ? (k.pausedUntil ? `until ${when(k.pausedUntil)}` : "until resumed") : "—"),
        h("td", null, h("div", { class: "row" }, k.paused
          ? actionButton("Resume", `Resume group ${k.key}`, async () => { await api("POST", keyPath(k.key, "/resume")); await draw(); })
          : [actionButton("Pause 1 min", `Pause group ${k.key} for a minute`, async () => {
            await api("POST", keyPath(k.key, "/pause"), { durationMs: 60000 }); await draw();
          }), actionButton("Pause", `Pause group ${k.key}`, async () => {
            await api("POST", keyPath(k.key, "/pause")); await draw();
          }, { class: "quiet" })])))))));
  };
  await draw();
  every(REFRESH_MS, draw);
}

function groupPolicyForm(queue, after) {
  const number = (name, label) => h("label", null, label, h("input", { name, type: "number", min: 1, inputmode: "numeric" }));
  const error = h("p", { class: "field-error", role: "alert" });
  const form = h("form", { class: "panel row" }, number("concurrency", "At once per key "),
    number("max", "Starts "), number("perMs", "per ms "),
    h("button", { type: "submit", disabled: readOnly() }, "Set limits of every key"), error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = (name) => (form.elements[name].value === "" ? null : Number(form.elements[name].value));
    const body = { concurrency: value("concurrency") };
    if (value("max") !== null || value("perMs") !== null) body.rate = { max: value("max"), perMs: value("perMs") };
    try {
      await api("PUT", `/queues/groups/policy${qs({ queue })}`, body);
      fill(error);
      say(`Limits of every key of ${queue} set.`, true);
      await after();
    } catch (e) {
      fill(error, e.message);
    }
  });
  return form;
}

// ---------------------------------------------------------------- audit trail

// Every operator change, newest first: who (the role), how, from where, what, how many.
async function auditPage(main) {
  const box = h("div", { class: "panel" });
  let before = null;
  const draw = async () => {
    const { entries, nextBefore } = await api("GET", `/queues/audit${qs({ limit: 100, before })}`);
    if (!entries.length) return fill(box, h("p", { class: "muted" }, "No operator change yet."));
    fill(box, h("table", null,
      h("thead", null, h("tr", null, ["when", "who", "via", "from", "queue", "action", "what", "jobs changed"]
        .map((t) => h("th", null, t)))),
      h("tbody", null, entries.map((e) => h("tr", null,
        h("td", { title: e.at }, exact(e.at)), h("td", null, e.actor), h("td", null, e.via),
        h("td", null, e.address || "—"), h("td", null, e.queue ? link(queuePath(e.queue), e.queue) : "—"),
        h("td", null, e.action),
        h("td", null, e.target && /^\d+$/.test(e.target) ? link(`/ui/jobs/${e.target}`, e.target) : (e.target || "—")),
        h("td", { class: "num" }, e.changed ?? "—"))))),
      h("div", { class: "row" },
        h("button", { type: "button", class: "quiet", disabled: !before,
          onclick: () => { before = null; draw().catch(fail); } }, "Newest"),
        h("button", { type: "button", class: "quiet", disabled: !nextBefore,
          onclick: () => { before = nextBefore; draw().catch(fail); } }, "Older")));
  };
  fill(main, h("h1", null, "Audit trail"),
    h("p", { class: "muted" }, "Every change an operator made, from this dashboard, the CLI or the API."), box);
  await draw();
  every(5000, async () => { if (!before) await draw(); });
}

// ---------------------------------------------------------------- API keys

// The keys services use: made here with the roles and queues each needs, its secret
// shown once; rotated or revoked at once.
async function keysPage(main) {
  const box = h("div", { class: "panel" });
  const shownOnce = h("div", { id: "new-secret" });
  const reveal = (key, verb) => fill(shownOnce, h("section", { class: "panel secret", role: "alert" },
    h("h2", null, `${verb} ${key.name}: its secret, shown once`),
    h("p", null, "Copy it now into the service's configuration: the appliance keeps only its hash."),
    h("code", { class: "secret-text" }, key.secret),
    h("div", { class: "row" }, h("button", { type: "button", class: "quiet",
      onclick: () => fill(shownOnce) }, "I have copied it"))));
  const draw = async () => {
    const { keys } = await api("GET", "/queues/keys");
    if (!keys.length) return fill(box, h("p", { class: "muted" }, "No API key yet."));
    fill(box, h("table", null,
      h("thead", null, h("tr", null, ["name", "secret starts", "roles", "queues", "state", "expires", "made", "note", ""]
        .map((t) => h("th", null, t)))),
      h("tbody", null, keys.map((k) => h("tr", { "aria-label": `Key ${k.name}` },
        h("td", null, k.name), h("td", null, h("code", null, k.prefix)), h("td", null, k.roles.join(", ")),
        h("td", null, k.queues.join(", ")), h("td", null, badge(k.state, k.state === "active" ? "completed" : "failed")),
        h("td", { title: k.expiresAt || "" }, k.expiresAt ? exact(k.expiresAt) : "never"),
        h("td", { title: k.createdAt }, `${exact(k.createdAt)} by ${k.createdBy}`), h("td", null, k.note || "—"),
        h("td", null, k.state === "revoked" ? null : h("div", { class: "row" },
          actionButton("Rotate", `Rotate key ${k.name}`, async () => {
            if (!(await confirmCount(`A new secret for ${k.name}: the one it has stops working now.`))) return;
            reveal(await api("POST", `/queues/keys/${segment(k.id)}/rotate`, {}), "Rotated");
            await draw();
          }, { class: "quiet" }),
          actionButton("Revoke", `Revoke key ${k.name}`, async () => {
            if (!(await confirmCount(`Revoke ${k.name}? Its next request is refused, for good.`))) return;
            await api("DELETE", `/queues/keys/${segment(k.id)}`);
            say(`${k.name} revoked.`, true);
            await draw();
          }, { class: "danger" }))))))));
  };
  fill(main, h("h1", null, "API keys"),
    h("p", { class: "muted" }, "A key for each service, with the roles and queues it needs: a leaked key can do"
      + " only that, and is revoked here at once."), shownOnce, box, keyForm(draw, (key) => reveal(key, "Made")));
  await draw();
}

function keyForm(after, made) {
  const error = h("p", { class: "field-error", role: "alert" });
  const role = (name, text) => h("label", { class: "check" },
    h("input", { type: "checkbox", name: "roles", value: name }), ` ${name}: ${text}`);
  const form = h("form", { class: "form-grid", "aria-label": "New API key" },
    h("label", null, "Name", h("input", { name: "name", required: true, maxlength: 100, placeholder: "billing-api" })),
    h("label", null, "Queues (comma-separated; * for every queue)",
      h("input", { name: "queues", required: true, maxlength: 6500, placeholder: "payments" })),
    h("fieldset", { class: "wide" }, h("legend", null, "Roles"),
      role("enqueue", "add jobs"), role("work", "lease and finish jobs"), role("read", "read everything"),
      role("admin", "every change")),
    h("label", null, "Expires after (days; empty: never)", h("input", { name: "days", inputmode: "numeric" })),
    h("label", null, "Note", h("input", { name: "note", maxlength: 500 })),
    h("div", { class: "row wide" }, h("button", { type: "submit" }, "Make key"), error));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const values = new FormData(form);
    const body = {
      name: values.get("name"), roles: values.getAll("roles"), note: values.get("note") || "",
      queues: String(values.get("queues")).split(",").map((q) => q.trim()).filter(Boolean),
    };
    const days = Number(values.get("days") || 0);
    if (days > 0) body.expiresAt = new Date(Date.now() + days * 86400000).toISOString();
    if (!body.roles.length) return (error.textContent = "Choose at least one role.");
    try {
      made(await api("POST", "/queues/keys", body));
      form.reset();
      await after();
    } catch (e) {
      if (!(e instanceof ApiError) || e.status === 401) return fail(e);
      error.textContent = e.message;
    }
  });
  return h("section", { class: "panel" }, h("h2", null, "New key"), form);
}

// ---------------------------------------------------------------- routing

function navigation(queue, here) {
  const nav = document.getElementById("nav");
  const item = (href, text) => h("a", { href, "data-link": true, "aria-current": here === href ? "page" : undefined }, text);
  fill(nav, item("/ui/", "Overview"), session.queues === null ? item("/ui/audit", "Audit") : null,
    keyKeeper() ? item("/ui/keys", "Keys") : null, queue ? [
    item(queuePath(queue), `Jobs of ${queue}`), item(queuePath(queue, "/failed"), "Failed"),
    item(queuePath(queue, "/schedules"), "Schedules"), item(queuePath(queue, "/workers"), "Workers"),
    item(queuePath(queue, "/groups"), "Groups"),
  ] : []);
}

async function route() {
  for (const timer of pageTimers) clearInterval(timer);
  pageTimers = [];
  for (const stream of pageStreams) stream.close();
  pageStreams = [];
  const main = document.getElementById("main");
  const path = location.pathname;
  const params = new URLSearchParams(location.search);
  const queueMatch = path.match(/^\/ui\/queues\/([^/]+)(\/(failed|schedules|workers|groups))?\/?$/);
  const jobMatch = path.match(/^\/ui\/jobs\/(\d{1,15})\/?$/);
  try {
    if (queueMatch) {
      const queue = decodeURIComponent(queueMatch[1]);
      navigation(queue, path);
      const page = { failed: failedPage, schedules: schedulesPage, workers: workersPage, groups: groupsPage }[queueMatch[3]];
      document.title = `${queue} · queueapp`;
      await (page ? page(main, queue) : queuePage(main, queue, params));
    } else if (path === "/ui/audit" || path === "/ui/audit/") {
      navigation(null, "/ui/audit");
      document.title = "Audit · queueapp";
      await auditPage(main);
    } else if (path === "/ui/keys" || path === "/ui/keys/") {
      navigation(null, "/ui/keys");
      document.title = "API keys · queueapp";
      await keysPage(main);
    } else if (jobMatch) {
      navigation(null, path);
      document.title = `Job ${jobMatch[1]} · queueapp`;
      await jobPage(main, jobMatch[1]);
    } else {
      navigation(null, "/ui/");
      document.title = "queueapp";
      await overview(main);
    }
  } catch (error) {
    fail(error);
  }
}

document.addEventListener("click", (event) => {
  const anchor = event.target.closest("a[data-link]");
  if (!anchor || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  history.pushState(null, "", anchor.getAttribute("href"));
  say("");
  route();
});
window.addEventListener("popstate", route);

// Light or dark: the system's (prefers-color-scheme) until the person picks one here.
function themeToggle() {
  const root = document.documentElement;
  const stored = localStorage.getItem("queueapp-theme");
  if (stored) root.dataset.theme = stored;
  const dark = () => (root.dataset.theme || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light")) === "dark";
  const button = h("button", { type: "button", class: "quiet", id: "theme" });
  const label = () => {
    button.textContent = dark() ? "Light" : "Dark";
    button.setAttribute("aria-label", dark() ? "Use the light theme" : "Use the dark theme");
  };
  button.addEventListener("click", () => {
    root.dataset.theme = dark() ? "light" : "dark";
    localStorage.setItem("queueapp-theme", root.dataset.theme);
    label();
  });
  label();
  document.querySelector(".top").append(button);
}

function clockToggle() {
  const button = h("button", { type: "button", class: "quiet", id: "clock" });
  const label = () => {
    button.textContent = clockPref.local ? "UTC" : "Local time";
    button.setAttribute("aria-label", clockPref.local ? "Show times in UTC" : "Show times on this computer's clock");
  };
  button.addEventListener("click", () => {
    clockPref.local = !clockPref.local;
    localStorage.setItem("queueapp-time", clockPref.local ? "local" : "utc");
    label();
    route();
  });
  label();
  document.querySelector(".top").append(button);
}

async function start() {
  clockToggle();
  themeToggle();
  Object.assign(session, await api("GET", "/ui/session"));
  const who = session.name.startsWith("key:") ? `key ${session.name.slice(4)}` : "";
  const where = session.queues === null ? "" : ` · ${session.queues.join(", ")}`;
  document.getElementById("role").textContent = [who, session.role === "read" ? "read-only" : ""]
    .filter(Boolean).join(" · ") + (who ? where : "");
  document.getElementById("logout").hidden = !session.auth;
  await route();
}

start().catch(fail);
