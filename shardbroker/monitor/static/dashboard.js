/* The /dashboard page's script. Every second it reads this monitoring port's JSON
 * endpoints (varz, shardz, connz, jsz, subsz: URLs relative to the page's <base>), turns
 * counters into rates by comparing two readings, fills the cards and tables, and draws the
 * last five minutes on canvas charts. It keeps no state on the broker: a closed tab costs
 * nothing. Figures in the DOM carry data-value (the raw number) so tests can read them.
 */
"use strict";

const REFRESH_MS = 1000;
const FETCH_TIMEOUT_MS = 4000;
const HISTORY_MS = 5 * 60 * 1000;
// The charts' time axis spans what the page has seen, at least this, at most HISTORY_MS.
const MIN_SPAN_MS = 60 * 1000;
// Shard counters reach the stats segment on the workers' monitor tick (a few times a
// second), so a one-second difference jitters; rates span this many readings instead.
const RATE_READINGS = 3;
const TOP_CONNECTIONS = 10;
const CONNZ_LIMIT = 1024;
const PALETTE = [
  "#58a6ff", "#f0883e", "#3fb950", "#bc8cff", "#ff7b72", "#39c5cf", "#d29922", "#db61a2",
];
const TOTAL_COLOR = "#e6edf3";
const TRAFFIC = ["in_msgs", "out_msgs", "in_bytes", "out_bytes"];

const view = {
  updates: 0,
  shardz: [], // the last RATE_READINGS /shardz readings, oldest first
  conns: new Map(), // cid -> {t, in_msgs, out_msgs, in_bytes, out_bytes}
  history: [], // one sample a reading: {t, shards: {id: figures}, total: figures}
};

// -- formatting -------------------------------------------------------------------------

function fmtCount(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  const abs = Math.abs(value);
  if (abs >= 1e9) return (value / 1e9).toFixed(2) + "G";
  if (abs >= 1e6) return (value / 1e6).toFixed(2) + "M";
  if (abs >= 1e4) return (value / 1e3).toFixed(1) + "k";
  return Number.isInteger(value) ? String(value) : value.toFixed(abs < 10 ? 1 : 0);
}

function fmtBytes(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = value;
  let unit = 0;
  while (Math.abs(v) >= 1024 && unit < units.length - 1) {
    v /= 1024;
    unit += 1;
  }
  const digits = v < 10 ? 2 : v < 100 ? 1 : 0;
  return (unit === 0 ? String(Math.round(v)) : v.toFixed(digits)) + " " + units[unit];
}

function fmtPct(value) {
  return value === null || value === undefined ? "–" : value.toFixed(value < 10 ? 1 : 0) + " %";
}

/** Milliseconds since the epoch of an RFC 3339 time with up to nanosecond digits. */
function parseTime(text) {
  return Date.parse(String(text).replace(/(\.\d{3})\d+/, "$1"));
}

// -- DOM helpers ------------------------------------------------------------------------

function setFigure(id, value, text) {
  const el = document.getElementById(id);
  if (!el) return;
  el.textContent = text;
  if (value === null || value === undefined) delete el.dataset.value;
  else el.dataset.value = String(value);
}

/** A table cell; `value` (a number) goes to data-value, `text` is what is shown. */
function cell(field, value, text, className) {
  const td = document.createElement("td");
  td.dataset.field = field;
  if (value !== null && value !== undefined) td.dataset.value = String(value);
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function numCell(field, value, format) {
  return cell(field, value, (format || fmtCount)(value), "num");
}

function row(attrs, cells) {
  const tr = document.createElement("tr");
  for (const [key, value] of Object.entries(attrs)) tr.dataset[key] = String(value);
  tr.append(...cells);
  return tr;
}

function fillBar(field, pct) {
  const td = cell(field, pct, "");
  const bar = document.createElement("span");
  bar.className = "bar";
  const fill = document.createElement("span");
  fill.style.width = Math.min(100, Math.max(0, pct)) + "%";
  bar.append(fill);
  td.append(bar, document.createTextNode(pct + " %"));
  if (pct >= 80) td.classList.add("alert");
  return td;
}

function replaceRows(section, rows) {
  section.replaceChildren(...rows);
}

// -- fetching ---------------------------------------------------------------------------

async function getJSON(path) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), FETCH_TIMEOUT_MS);
  try {
    const response = await fetch(path, { cache: "no-store", signal: abort.signal });
    if (!response.ok) throw new Error(`${path.split("?")[0]}: HTTP ${response.status}`);
    return await response.json();
  } finally {
    clearTimeout(timer);
  }
}

const SOURCES = {
  varz: "varz",
  shardz: "shardz",
  connz: `connz?auth=true&sort=msgs_from&limit=${CONNZ_LIMIT}`,
  jsz: "jsz?accounts=true&streams=true&consumers=true",
  subsz: "subsz",
};

async function refresh() {
  const names = Object.keys(SOURCES);
  const settled = await Promise.allSettled(names.map((name) => getJSON(SOURCES[name])));
  const data = {};
  const failed = [];
  settled.forEach((result, i) => {
    if (result.status === "fulfilled") data[names[i]] = result.value;
    else failed.push(`${names[i]}: ${result.reason && result.reason.message}`);
  });
  if (data.varz) showServer(data.varz);
  if (data.shardz) showShards(data.shardz);
  if (data.connz) showConnections(data.connz);
  if (data.jsz) showJetStream(data.jsz);
  if (data.subsz) showSubsz(data.subsz);
  drawCharts();
  const status = document.getElementById("status");
  if (failed.length) {
    status.dataset.state = "error";
    status.dataset.error = failed.join("; ");
    status.textContent = failed.length === names.length ? "broker unreachable" : "partial data";
    status.title = failed.join("\n");
  } else {
    view.updates += 1;
    status.dataset.state = "ok";
    status.dataset.updates = String(view.updates);
    delete status.dataset.error;
    status.textContent = "live · " + new Date().toLocaleTimeString();
    status.title = "";
  }
}

async function loop() {
  const started = performance.now();
  try {
    await refresh();
  } catch (err) {
    const status = document.getElementById("status");
    status.dataset.state = "error";
    status.dataset.error = String(err);
    status.textContent = "error";
  }
  setTimeout(loop, Math.max(50, REFRESH_MS - (performance.now() - started)));
}

// -- server and shards ------------------------------------------------------------------

function showServer(varz) {
  document.getElementById("server-name").textContent = varz.server_name;
  document.getElementById("server-version").textContent = "v" + varz.version;
  document.getElementById("server-uptime").textContent = varz.uptime;
}

/** Per-second rates of the traffic counters between two readings of one row. */
function rates(current, previous, seconds) {
  const out = {};
  for (const name of TRAFFIC) {
    out[name + "_rate"] =
      previous && seconds > 0 ? Math.max(0, (current[name] - previous[name]) / seconds) : null;
  }
  return out;
}

function showShards(shardz) {
  view.shardz.push(shardz);
  if (view.shardz.length > RATE_READINGS) view.shardz.shift();
  const oldest = view.shardz.length > 1 ? view.shardz[0] : null;
  const seconds = oldest ? (shardz.now_ns - oldest.now_ns) / 1e9 : 0;
  const before = new Map(oldest ? oldest.shards.map((s) => [s.shard, s]) : []);

  const sample = { t: shardz.now_ns / 1e6, shards: {}, total: null };
  const body = [];
  for (const shard of shardz.shards) {
    const earlier = before.get(shard.shard);
    // A restarted shard starts its counters again: no rate across the restart.
    const r = rates(shard, earlier && earlier.pid === shard.pid ? earlier : null, seconds);
    const figures = { ...shard, ...r };
    sample.shards[shard.shard] = figures;
    body.push(shardRow(String(shard.shard), figures));
  }
  const supervisor = shardz.supervisor;
  sample.shards.supervisor = { cpu: supervisor.cpu, mem: supervisor.mem };
  body.push(
    row({ shard: "supervisor" }, [
      cell("shard", 0, "0"), cell("role", null, "supervisor"), cell("up", 1, "up", "up"),
      cell("pid", supervisor.pid, String(supervisor.pid)),
      ...Array.from({ length: 9 }, () => cell("", null, "")),
      numCell("cpu", supervisor.cpu, fmtPct), numCell("mem", supervisor.mem, fmtBytes),
    ]),
  );
  const totals = { ...shardz.totals, ...rates(shardz.totals, oldest && oldest.totals, seconds) };
  sample.total = totals;
  const table = document.getElementById("shards");
  replaceRows(table.tBodies[0], body);
  replaceRows(table.tFoot, [shardRow("total", totals)]);

  setFigure("total-connections", totals.connections, fmtCount(totals.connections));
  for (const name of TRAFFIC) {
    const value = totals[name + "_rate"];
    const text = name.endsWith("bytes") ? fmtBytes(value) + "/s" : fmtCount(value) + "/s";
    setFigure("total-" + name + "_rate", value, value === null ? "–" : text);
  }
  setFigure("total-subscriptions", totals.subscriptions, fmtCount(totals.subscriptions));
  setFigure("total-slow_consumers", totals.slow_consumers, fmtCount(totals.slow_consumers));
  setFigure("total-ring_fill_pct", totals.ring_fill_pct, totals.ring_fill_pct + " %");
  setFigure("total-cpu", totals.cpu, fmtPct(totals.cpu));
  document.getElementById("cores").textContent = `(${shardz.cores} cores)`;
  setFigure("total-mem", totals.mem, fmtBytes(totals.mem));

  view.history.push(sample);
  while (view.history.length && view.history[0].t < sample.t - HISTORY_MS) view.history.shift();
}

function shardRow(id, f) {
  const isTotal = id === "total";
  const state = isTotal ? `${f.workers_up}/${f.workers} up` : f.up ? "up" : "down";
  const stateClass = isTotal ? "" : f.up ? "up" : "down";
  return row({ shard: id }, [
    cell("shard", isTotal ? null : f.shard, isTotal ? "total" : String(f.shard)),
    cell("role", null, isTotal ? "workers" : f.role),
    cell("up", isTotal ? f.workers_up : Number(f.up), state, stateClass),
    cell("pid", isTotal ? null : f.pid, isTotal ? "" : String(f.pid || "")),
    numCell("connections", f.connections),
    numCell("subscriptions", f.subscriptions),
    numCell("in_msgs_rate", f.in_msgs_rate),
    numCell("out_msgs_rate", f.out_msgs_rate),
    numCell("in_bytes_rate", f.in_bytes_rate, fmtBytes),
    numCell("out_bytes_rate", f.out_bytes_rate, fmtBytes),
    cell("slow_consumers", f.slow_consumers, fmtCount(f.slow_consumers),
      f.slow_consumers ? "num alert" : "num"),
    numCell("restarts", f.restarts),
    f.role === "storage" ? cell("ring_fill_pct", f.ring_fill_pct, "") : fillBar("ring_fill_pct", f.ring_fill_pct),
    numCell("cpu", f.cpu, fmtPct),
    numCell("mem", f.mem, fmtBytes),
  ]);
}

// -- connections and accounts -----------------------------------------------------------

function showConnections(connz) {
  const t = parseTime(connz.now);
  const seen = new Map();
  const accounts = new Map();
  const ranked = connz.connections.map((c) => {
    const earlier = view.conns.get(c.cid);
    const seconds = earlier ? (t - earlier.t) / 1000 : 0;
    const r = rates(c, earlier, seconds);
    seen.set(c.cid, { t, in_msgs: c.in_msgs, out_msgs: c.out_msgs, in_bytes: c.in_bytes,
      out_bytes: c.out_bytes });
    const account = c.account || c.name_tag || "$G";
    const a = accounts.get(account) || { conns: 0, subs: 0, in_msgs_rate: 0, out_msgs_rate: 0 };
    a.conns += 1;
    a.subs += c.subscriptions;
    a.in_msgs_rate += r.in_msgs_rate || 0;
    a.out_msgs_rate += r.out_msgs_rate || 0;
    accounts.set(account, a);
    return { ...c, ...r, account, rank: (r.in_msgs_rate ?? -1) + (r.out_msgs_rate ?? -1) };
  });
  view.conns = seen;
  ranked.sort((a, b) => b.rank - a.rank || b.in_msgs + b.out_msgs - a.in_msgs - a.out_msgs);
  const rows = ranked.slice(0, TOP_CONNECTIONS).map((c) =>
    row({ cid: c.cid }, [
      cell("cid", c.cid, String(c.cid), "num"),
      numCell("shard", c.shard),
      cell("name", null, c.name || ""),
      cell("type", null, c.type || ""),
      cell("account", null, c.account),
      cell("address", null, `${c.ip}:${c.port}`),
      numCell("in_msgs_rate", c.in_msgs_rate),
      numCell("out_msgs_rate", c.out_msgs_rate),
      numCell("in_bytes_rate", c.in_bytes_rate, fmtBytes),
      numCell("out_bytes_rate", c.out_bytes_rate, fmtBytes),
      numCell("subscriptions", c.subscriptions),
      numCell("pending_bytes", c.pending_bytes, fmtBytes),
      cell("uptime", null, c.uptime),
    ]),
  );
  replaceRows(document.getElementById("top-conns").tBodies[0], rows);
  document.getElementById("top-conns-empty").hidden = rows.length > 0;

  const accountRows = [...accounts.entries()]
    .sort((a, b) => b[1].conns - a[1].conns || a[0].localeCompare(b[0]))
    .map(([name, a]) =>
      row({ account: name }, [
        cell("account", null, name),
        numCell("connections", a.conns),
        numCell("subscriptions", a.subs),
        numCell("in_msgs_rate", a.in_msgs_rate),
        numCell("out_msgs_rate", a.out_msgs_rate),
      ]),
    );
  replaceRows(document.getElementById("accounts").tBodies[0], accountRows);
}

function showSubsz(subsz) {
  // The match counters of /subsz are not kept (they would cost the message path).
  document.getElementById("subsz").textContent =
    `Subscription index: ${fmtCount(subsz.num_subscriptions)} subscriptions, ` +
    `${fmtCount(subsz.num_cache)} cached subjects, ${fmtCount(subsz.num_inserts)} inserts, ` +
    `${fmtCount(subsz.num_removes)} removes.`;
}

// -- JetStream --------------------------------------------------------------------------

function showJetStream(jsz) {
  const disabled = Boolean(jsz.disabled);
  document.getElementById("js-disabled").hidden = !disabled;
  document.getElementById("js-tables").hidden = disabled;
  setFigure("total-js_messages", disabled ? null : jsz.messages,
    disabled ? "off" : fmtCount(jsz.messages));
  if (disabled) {
    setFigure("total-js_pending", null, "off");
    return;
  }
  const streams = [];
  const consumers = [];
  let pending = 0;
  for (const account of jsz.account_details || []) {
    for (const stream of account.stream_detail || []) {
      const s = stream.state || {};
      streams.push(
        row({ stream: `${account.name}/${stream.name}` }, [
          cell("account", null, account.name),
          cell("stream", null, stream.name),
          numCell("messages", s.messages),
          numCell("bytes", s.bytes, fmtBytes),
          numCell("first_seq", s.first_seq),
          numCell("last_seq", s.last_seq),
          numCell("consumer_count", s.consumer_count),
        ]),
      );
      for (const c of stream.consumer_detail || []) {
        pending += c.num_pending || 0;
        const delivered = c.delivered || {};
        const floor = c.ack_floor || {};
        consumers.push(
          row({ consumer: `${account.name}/${stream.name}/${c.name}` }, [
            cell("account", null, account.name),
            cell("stream", null, stream.name),
            cell("consumer", null, c.name),
            cell("num_pending", c.num_pending, fmtCount(c.num_pending),
              c.num_pending ? "num alert" : "num"),
            numCell("num_ack_pending", c.num_ack_pending),
            numCell("num_redelivered", c.num_redelivered),
            numCell("num_waiting", c.num_waiting),
            numCell("delivered_stream_seq", delivered.stream_seq),
            numCell("ack_floor_stream_seq", floor.stream_seq),
          ]),
        );
      }
    }
  }
  replaceRows(document.getElementById("js-streams").tBodies[0], streams);
  replaceRows(document.getElementById("js-consumers").tBodies[0], consumers);
  setFigure("total-js_pending", pending, fmtCount(pending));
}

// -- charts -----------------------------------------------------------------------------

function shardColor(id) {
  return id === "supervisor" ? "#8b949e" : PALETTE[(Number(id) - 1) % PALETTE.length];
}

/** Series of one figure of every shard (of `roles`), and optionally of the totals. */
function perShard(field, dash, roles, withTotal) {
  const last = view.history[view.history.length - 1];
  if (!last) return [];
  const ids = Object.keys(last.shards).filter((id) => {
    const s = last.shards[id];
    return roles.includes(id === "supervisor" ? "supervisor" : s.role);
  });
  const series = ids.map((id) => ({
    label: id === "supervisor" ? "supervisor" : `shard ${id}${last.shards[id].role === "storage" ? " (storage)" : ""}`,
    color: shardColor(id),
    dash,
    points: view.history.map((h) => [h.t, h.shards[id] ? h.shards[id][field] : null]),
  }));
  if (withTotal) {
    series.push({
      label: "total",
      color: TOTAL_COLOR,
      dash,
      points: view.history.map((h) => [h.t, h.total ? h.total[field] : null]),
    });
  }
  return series;
}

function drawCharts() {
  const workers = ["worker"];
  const dashed = [5, 4];
  draw("chart-msgs", [
    ...perShard("in_msgs_rate", [], workers, true),
    ...perShard("out_msgs_rate", dashed, workers, true),
  ], { format: fmtCount, floor: 5 });
  draw("chart-bytes", [
    ...perShard("in_bytes_rate", [], workers, true),
    ...perShard("out_bytes_rate", dashed, workers, true),
  ], { format: fmtBytes, floor: 1024, binary: true });
  draw("chart-conns", [
    ...perShard("connections", [], workers, true),
    ...perShard("subscriptions", dashed, workers, true),
  ], { format: fmtCount, floor: 5 });
  draw("chart-cpu", [
    ...perShard("cpu", [], ["worker", "storage", "supervisor"], false),
    ...perShard("ring_fill_pct", dashed, workers, false),
  ], { format: (v) => v.toFixed(0) + " %", floor: 10 });
}

const GRID_LINES = 5;

/** A round upper bound for the y axis (its GRID_LINES steps round too). */
function niceMax(value, floor) {
  if (!(value > floor)) return floor;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) {
    if (value <= step * magnitude) return step * magnitude;
  }
  return 10 * magnitude;
}

/** The same for bytes: round in the largest binary unit below the value (500 KiB). */
function niceBinaryMax(value, floor) {
  if (!(value > floor)) return floor;
  let unit = 1;
  while (value / unit >= 1024) unit *= 1024;
  return niceMax(value / unit, 1) * unit;
}

function draw(id, series, axis) {
  const format = axis.format;
  const canvas = document.getElementById(id);
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);

  const left = 64;
  const right = 10;
  const top = 8;
  const bottom = 20;
  const plotW = Math.max(10, width - left - right);
  const plotH = Math.max(10, height - top - bottom);
  const now = view.history.length ? view.history[view.history.length - 1].t : Date.now();
  const first = view.history.length ? view.history[0].t : now;
  const span = Math.min(HISTORY_MS, Math.max(MIN_SPAN_MS, now - first));
  const start = now - span;
  let max = 0;
  let points = 0;
  for (const s of series) {
    for (const [, v] of s.points) if (v !== null && v !== undefined) max = Math.max(max, v);
    points = Math.max(points, s.points.filter(([, v]) => v !== null && v !== undefined).length);
  }
  const yMax = axis.binary ? niceBinaryMax(max, axis.floor) : niceMax(max, axis.floor);
  const x = (t) => left + ((t - start) / span) * plotW;
  const y = (v) => top + plotH - (v / yMax) * plotH;

  ctx.font = "11px system-ui, sans-serif";
  ctx.lineWidth = 1;
  ctx.strokeStyle = "#30363d";
  ctx.fillStyle = "#8b949e";
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (let i = 0; i <= GRID_LINES; i += 1) {
    const v = (yMax * i) / GRID_LINES;
    const py = Math.round(y(v)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(left, py);
    ctx.lineTo(left + plotW, py);
    ctx.stroke();
    ctx.fillText(format(v), left - 6, py);
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  // Six labels over the span, in seconds or minutes before now.
  for (let i = 5; i >= 0; i -= 1) {
    const ago = (span * i) / 5;
    const label = i === 0 ? "now" : ago >= 120000 ? `-${Math.round(ago / 60000)}m` : `-${Math.round(ago / 1000)}s`;
    ctx.fillText(label, Math.max(left + 10, Math.min(x(now - ago), left + plotW - 12)), top + plotH + 5);
  }

  for (const s of series) {
    ctx.strokeStyle = s.color;
    ctx.lineWidth = s.label === "total" ? 2 : 1.5;
    ctx.setLineDash(s.dash);
    ctx.beginPath();
    let drawing = false;
    for (const [t, v] of s.points) {
      if (v === null || v === undefined || t < start) {
        drawing = false;
        continue;
      }
      if (drawing) ctx.lineTo(x(t), y(v));
      else ctx.moveTo(x(t), y(v));
      drawing = true;
    }
    ctx.stroke();
  }
  ctx.setLineDash([]);
  canvas.dataset.points = String(points);
  canvas.dataset.series = String(series.length);
  canvas.dataset.max = String(max);
  legend(id, series);
}

function legend(id, series) {
  const box = document.querySelector(`[data-legend-for="${id}"]`);
  const seen = new Map();
  for (const s of series) if (!seen.has(s.label)) seen.set(s.label, s.color);
  const key = [...seen.keys()].join("|");
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  box.replaceChildren(
    ...[...seen.entries()].map(([label, color]) => {
      const item = document.createElement("span");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = color;
      item.append(swatch, document.createTextNode(label));
      return item;
    }),
  );
}

window.addEventListener("resize", drawCharts);
loop();
