// The txkestrel dashboard: polls the admin service's JSON reads, keeps the last minutes of
// samples in the page, and draws them. Rates are computed here from counter deltas, as
// `kestrel top` does: the server keeps no history of its own. Read-only: it only GETs.

const POLL_MS = 1000;
const KEEP_MS = 5 * 60 * 1000;
// The table's rates, and its order, are over the last few seconds: one-second rates are too
// noisy to sort by (rows would swap places at every sample).
const RATE_MS = 5000;
// Sparklines cost a few SVG nodes each; with thousands of queues only the most backed-up get them.
const CHARTED = 20;
// Their size is fixed (the other charts fill their boxes), so drawing them never measures the page.
const SPARKLINE = { width: 150, height: 28 };
// A young page's charts span at least this much, so a few samples do not fill the width.
const MIN_SPAN_MS = 10 * 1000;
const FETCH_TIMEOUT_MS = 5000;
// The page asks for the deepest queues only, so that a server with a million queues answers
// a poll at once; the header still counts them all (the server's stats_queue_limit caps this).
const TOP_QUEUES = 500;
const SVG = "http://www.w3.org/2000/svg";

const HISTOGRAM_TITLES = {
  set: "set",
  get_hit: "get, item found",
  get_miss: "get, queue empty",
  delivery: "delivery (time queued)",
  fsync_delay: "journal batch (fsync delay)",
};
const STATUS_CLASSES = { Up: "good", WriteAvoid: "warn", ReadOnly: "warn", Quiescent: "bad", Down: "bad" };

// Samples, oldest first, in columns: one entry per sample in each array. A queue's columns
// hold null for the samples taken before it existed. The server's adds and removes a second
// are the sums of its queues' since the sample before (null for the first): its own
// total_items is a sum over the queues that exist, so it drops when one is deleted.
const history = {
  times: [],
  server: { uptime: [], items: [], total: [], gets: [], sets: [], adds: [], removes: [] },
  latency: [],
  queues: new Map(),
};

const byId = (id) => document.getElementById(id);
const rows = new Map(); // queue name -> its table row and cells
const cards = new Map(); // histogram name -> its card
let serverInfo = null;
let failingSince = null;
let lastAnswer = null; // the last stats and status drawn, to redraw when the filter changes

// Formatting

const integer = new Intl.NumberFormat("en", { maximumFractionDigits: 0 });
const compact = new Intl.NumberFormat("en", { notation: "compact", maximumFractionDigits: 1 });

function rate(value) {
  if (value == null) return "–";
  return value > 0 && value < 10 ? value.toFixed(1) : integer.format(value);
}

function size(bytes) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let unit = 0;
  while (bytes >= 1024 && unit < units.length - 1) {
    bytes /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} B` : `${bytes.toFixed(1)} ${units[unit]}`;
}

function age(ms) {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

function uptime(seconds) {
  const days = Math.floor(seconds / 86400);
  const hours = Math.floor((seconds % 86400) / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  if (days) return `${days} d ${hours} h`;
  if (hours) return `${hours} h ${minutes} min`;
  if (minutes) return `${minutes} min ${seconds % 60} s`;
  return `${seconds} s`;
}

function latency(seconds) {
  if (seconds < 0.001) return `${Math.round(seconds * 1e6)} µs`;
  if (seconds < 1) return `${+(seconds * 1000).toPrecision(2)} ms`;
  if (seconds < 120) return `${+seconds.toPrecision(2)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} d`;
}

function span(ms) {
  const seconds = Math.round(ms / 1000);
  return seconds < 60 ? `${seconds} s` : uptime(seconds);
}

// Fetching

async function getJSON(path) {
  const response = await fetch(path, { cache: "no-store", signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new Error(`${path}: ${response.status} ${body?.error ?? response.statusText}`);
  return body;
}

async function poll() {
  const started = performance.now();
  try {
    let stats, status, histograms;
    try {
      [stats, status, histograms] = await Promise.all([
        getJSON(`/stats.json?top=${TOP_QUEUES}`), getJSON("/status.json"), getJSON("/latency.json"),
      ]);
      if (serverInfo === null || failingSince !== null) serverInfo = await getJSON("/server_info.json");
    } catch (error) {
      showTrouble(error);
      return;
    }
    failingSince = null;
    byId("banner").hidden = true;
    document.body.classList.remove("stale");
    record(stats, histograms, performance.now());
    lastAnswer = { stats, status };
    draw(stats, status);
  } finally {
    // Drawing errors are left to reach the console (and the acceptance test), but polling goes on.
    setTimeout(poll, Math.max(POLL_MS - (performance.now() - started), 100));
  }
}

function showTrouble(error) {
  failingSince ??= new Date();
  const banner = byId("banner");
  banner.textContent = `The server has not answered since ${failingSince.toLocaleTimeString()} (${error.message}). `
    + "Retrying every second; the figures below are from its last answer.";
  banner.hidden = false;
  document.body.classList.add("stale");
  const status = byId("status");
  status.textContent = "no answer";
  status.className = "status bad";
}

// History

function record(stats, histograms, now) {
  const server = stats.server;
  const columns = history.server;
  // A restarted server counts from zero again: deltas across the restart mean nothing.
  if (columns.uptime.length && server.uptime < columns.uptime.at(-1)) {
    forget();
    serverInfo = null;
  }
  history.times.push(now);
  columns.uptime.push(server.uptime);
  columns.items.push(server.curr_items);
  columns.total.push(server.total_items);
  columns.gets.push(server.cmd_get);
  columns.sets.push(server.cmd_set);
  history.latency.push(histograms);
  const last = history.times.length - 1;
  let adds = last ? 0 : null;
  let removes = adds;
  for (const [name, queue] of Object.entries(stats.queues)) {
    let series = history.queues.get(name);
    if (series === undefined) {
      series = { items: new Array(last).fill(null), total: new Array(last).fill(null) };
      history.queues.set(name, series);
    }
    series.items.push(queue.items);
    series.total.push(queue.total_items);
    const between = last ? flow(series, last - 1, last) : null;
    if (between !== null) {
      adds += between.adds;
      removes += between.removes;
    }
  }
  if (stats.queues_omitted && last) {
    // The queues listed are not all of them: the server's own totals give its flow instead.
    adds = Math.max(columns.total[last] - columns.total[last - 1], 0);
    removes = Math.max(adds - (columns.items[last] - columns.items[last - 1]), 0);
  }
  columns.adds.push(adds);
  columns.removes.push(removes);
  for (const name of history.queues.keys()) {
    if (!Object.hasOwn(stats.queues, name)) history.queues.delete(name);
  }
  let old = 0;
  while (old < history.times.length - 1 && now - history.times[old] > KEEP_MS) old += 1;
  if (old) {
    for (const column of allColumns()) column.splice(0, old);
  }
}

function* allColumns() {
  yield history.times;
  yield history.latency;
  yield* Object.values(history.server);
  for (const series of history.queues.values()) {
    yield series.items;
    yield series.total;
  }
}

function forget() {
  for (const column of allColumns()) column.length = 0;
  history.queues.clear();
}

// Adds and removes a second between samples a and b, counted as `kestrel top` does: removes
// are the adds less the change in depth. null where the queue did not exist at both samples,
// or was deleted and created again in between.
function flow(series, a, b) {
  const seconds = (history.times[b] - history.times[a]) / 1000;
  if (series.total[a] == null || series.total[b] == null || seconds <= 0) return null;
  const added = series.total[b] - series.total[a];
  if (added < 0) return null;
  const removed = Math.max(added - (series.items[b] - series.items[a]), 0);
  return { adds: added / seconds, removes: removed / seconds };
}

// The samples a recent rate is taken between: the last, and the oldest within RATE_MS of it
// that the column has.
function recentSamples(column) {
  const last = history.times.length - 1;
  let first = last;
  // Half a poll of slack, so timer jitter does not shorten the window by a whole sample.
  while (first > 0 && history.times[last] - history.times[first - 1] <= RATE_MS + POLL_MS / 2
         && column[first - 1] != null) {
    first -= 1;
  }
  return [first, last];
}

function recentFlow(series) {
  const [first, last] = recentSamples(series.total);
  return first === last ? { adds: 0, removes: 0 } : flow(series, first, last);
}

function recentRate(column) {
  const [first, last] = recentSamples(column);
  return first === last ? 0 : (column[last] - column[first]) / ((history.times[last] - history.times[first]) / 1000);
}

// [time, value] points of a column's samples; of the adds and removes between each two of a queue's.
function points(column) {
  return column.flatMap((value, index) => (value == null ? [] : [[history.times[index], value]]));
}

function flowPoints(series) {
  const adds = [];
  const removes = [];
  for (let index = 1; index < history.times.length; index += 1) {
    const between = flow(series, index - 1, index);
    if (between === null) continue;
    adds.push([history.times[index], between.adds]);
    removes.push([history.times[index], between.removes]);
  }
  return { adds, removes };
}

// Drawing

function draw(stats, status) {
  const now = history.times.at(-1);
  const period = { from: now - Math.max(now - history.times[0], MIN_SPAN_MS), to: now };
  for (const [name, histogram] of Object.entries(history.latency.at(-1))) {
    if (!cards.has(name)) newCard(name, histogram.description);
  }
  const sizes = measure();
  drawHeader(stats, status);
  drawServer(period, sizes);
  drawQueues(stats, period);
  drawLatency(sizes);
}

// The size of every chart that fills its box, read before anything is written: a read after a
// write makes the browser lay the page out again, and with thousands of table rows that costs
// more than all the rest.
function measure() {
  const sizes = new Map();
  for (const svg of document.querySelectorAll("svg.chart, svg.histogram")) {
    sizes.set(svg, { width: svg.clientWidth || 300, height: svg.clientHeight || 150 });
  }
  return sizes;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function drawHeader(stats, status) {
  const server = stats.server;
  const badge = byId("status");
  badge.textContent = status.status;
  badge.className = `status ${STATUS_CLASSES[status.status] ?? ""}`;
  badge.dataset.status = status.status;
  setText(byId("host"), location.host);
  setText(byId("version"), server.version);
  setText(byId("uptime"), uptime(server.uptime));
  setText(byId("connections"), integer.format(server.curr_connections));
  setText(byId("gets"), rate(recentRate(history.server.gets)));
  setText(byId("sets"), rate(recentRate(history.server.sets)));
  setText(byId("items"), integer.format(server.curr_items));
  setText(byId("queue-count"), integer.format(stats.queue_count ?? history.queues.size));
  setText(byId("updated"), `updated ${new Date().toLocaleTimeString()}`);
  document.title = `txkestrel ${location.host}: ${status.status}`;
  if (serverInfo !== null) {
    const listeners = Object.entries(serverInfo.listeners).map(([name, address]) => `${name} ${address}`).join(", ");
    setText(byId("footer"), `pid ${serverInfo.pid} · config ${serverInfo.config_path ?? "none"} · spool `
      + `${serverInfo.queue_path} · listening: ${listeners}. A read-only view of /stats.json, /status.json and `
      + `/latency.json, sampled every second; the page keeps the last ${KEEP_MS / 60000} minutes.`);
  }
}

function drawServer(period, sizes) {
  setText(byId("server-span"), `last ${span(period.to - period.from)}`);
  const server = history.server;
  const depth = byId("server-depth");
  const rates = byId("server-rates");
  timeChart(depth, sizes.get(depth), [{ name: "depth", points: points(server.items), area: true }], period, true);
  const lines = [{ name: "in", points: points(server.adds) }, { name: "out", points: points(server.removes) }];
  timeChart(rates, sizes.get(rates), lines, period, true);
}

function drawQueues(stats, period) {
  const latest = history.times.length - 1;
  const filter = byId("filter").value.trim().toLowerCase();
  const view = [];
  for (const [name, series] of history.queues) {
    const recent = recentFlow(series) ?? { adds: null, removes: null };
    const growth = (recent.adds ?? 0) - (recent.removes ?? 0);
    view.push({ name, series, recent, growth, items: series.items[latest] });
  }
  // What is backing up first: the fastest growing, then the deepest (as `kestrel top`).
  view.sort((a, b) => b.growth - a.growth || b.items - a.items || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const shown = filter ? view.filter((entry) => entry.name.toLowerCase().includes(filter)) : view;
  const kept = new Set();
  shown.forEach((entry, index) => {
    const row = rows.get(entry.name) ?? newRow(entry.name);
    kept.add(entry.name);
    fillRow(row, entry, stats.queues[entry.name]);
    if (index < CHARTED) {
      chartRow(row, entry.series, period);
    } else if (row.charted) {
      row.depthChart.replaceChildren();
      row.flowChart.replaceChildren();
      row.charted = false;
    }
  });
  for (const name of rows.keys()) {
    if (!kept.has(name)) rows.delete(name);
  }
  const body = document.querySelector("#queues tbody");
  const order = shown.map((entry) => rows.get(entry.name).tr);
  if (order.length !== body.children.length || order.some((tr, index) => body.children[index] !== tr)) {
    body.replaceChildren(...order);
  }
  byId("no-queues").hidden = view.length > 0;
  let note = "";
  if (stats.queues_omitted) {
    note = `The ${integer.format(view.length)} deepest of ${integer.format(stats.queue_count)} queues. `;
  }
  if (filter) note += `${integer.format(shown.length)} of ${integer.format(view.length)} queues match. `;
  if (shown.length > CHARTED) note += `Charts for the first ${CHARTED} only.`;
  setText(byId("queue-note"), note);
}

function newRow(name) {
  const tr = document.createElement("tr");
  tr.dataset.queue = name;
  // Roles, as the rows are laid out as grids rather than as a table (see dashboard.css).
  tr.setAttribute("role", "row");
  const cell = (className) => {
    const td = document.createElement("td");
    td.className = className;
    td.setAttribute("role", "cell");
    tr.append(td);
    return td;
  };
  const row = { tr, charted: false };
  const nameCell = cell("name");
  nameCell.textContent = name;
  nameCell.title = name;
  for (const key of ["items", "bytes", "adds", "removes", "open", "oldest", "memory", "disk", "journal"]) {
    row[key] = cell("number");
  }
  for (const key of ["depthChart", "flowChart"]) {
    const chart = key === "depthChart" ? "queue-depth" : "queue-flow";
    row[key] = svgNode("svg", { class: "spark", "data-chart": chart, ...SPARKLINE });
    cell("chart-cell").append(row[key]);
  }
  rows.set(name, row);
  return row;
}

function fillRow(row, entry, stats) {
  const { recent } = entry;
  row.tr.classList.toggle("growing", entry.growth > 0);
  row.tr.dataset.growth = String(entry.growth);
  row.items.dataset.depth = String(stats.items);
  setText(row.items, integer.format(stats.items));
  setText(row.bytes, size(stats.bytes));
  setText(row.adds, rate(recent.adds));
  setText(row.removes, rate(recent.removes));
  setText(row.open, integer.format(stats.open_transactions));
  setText(row.oldest, stats.items ? age(stats.head_age ?? 0) : "–");
  setText(row.memory, integer.format(stats.mem_items));
  setText(row.disk, integer.format(stats.items - stats.mem_items));
  setText(row.journal, size(stats.logsize));
  for (const key of ["items", "open", "disk"]) row[key].classList.toggle("zero", row[key].textContent === "0");
}

function chartRow(row, series, period) {
  const { adds, removes } = flowPoints(series);
  timeChart(row.depthChart, SPARKLINE, [{ name: "depth", points: points(series.items), area: true }], period, false);
  timeChart(row.flowChart, SPARKLINE, [{ name: "in", points: adds }, { name: "out", points: removes }], period, false);
  row.charted = true;
}

function drawLatency(sizes) {
  const latest = history.latency.at(-1);
  const oldest = history.latency[0];
  const windowed = Object.keys(latest).some((name) => latest[name].count > oldest[name].count);
  const note = windowed ? `requests of the last ${span(history.times.at(-1) - history.times[0])}`
    : "none in the last minutes: everything since the server started";
  setText(byId("latency-span"), `${note}; bar heights on a log scale`);
  for (const [name, histogram] of Object.entries(latest)) {
    const counts = windowed ? histogram.counts.map((count, index) => count - oldest[name].counts[index]) : histogram.counts;
    const card = cards.get(name);
    drawHistogram(card, sizes.get(card.chart), histogram.bounds, counts);
  }
}

function newCard(name, description) {
  const card = document.createElement("div");
  card.className = "histogram-card";
  card.dataset.histogram = name;
  const title = document.createElement("h3");
  title.textContent = HISTOGRAM_TITLES[name] ?? name;
  title.title = description;
  const figures = document.createElement("div");
  figures.className = "figures";
  const chart = svgNode("svg", { class: "histogram", "data-chart": `latency-${name}` });
  card.append(title, figures, chart);
  byId("latency").append(card);
  const entry = { figures, chart };
  cards.set(name, entry);
  return entry;
}

// The value below which a fraction q of the observations fall, interpolated linearly within
// its bucket (as Prometheus's histogram_quantile does). `position` is where it falls in
// bucket units, for the chart. null for an empty histogram.
function quantile(bounds, counts, q) {
  const total = counts.reduce((sum, count) => sum + count, 0);
  if (total === 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let index = 0; index < counts.length; index += 1) {
    if (counts[index] > 0 && seen + counts[index] >= rank) {
      const fraction = (rank - seen) / counts[index];
      if (index === bounds.length) return { text: `> ${latency(bounds.at(-1))}`, position: index + fraction };
      const lower = index === 0 ? 0 : bounds[index - 1];
      const value = lower + (bounds[index] - lower) * fraction;
      return { text: `≈ ${latency(value)}`, position: index + fraction };
    }
    seen += counts[index];
  }
  return null;
}

function drawHistogram(card, size, bounds, counts) {
  const total = counts.reduce((sum, count) => sum + count, 0);
  const marks = [["p50", quantile(bounds, counts, 0.5)], ["p99", quantile(bounds, counts, 0.99)]];
  const figures = [["n", integer.format(total)], ...marks.map(([label, mark]) => [label, mark?.text ?? "–"])];
  card.figures.replaceChildren(...figures.map(([label, value]) => {
    const part = document.createElement("span");
    const bold = document.createElement("b");
    bold.textContent = value;
    part.append(`${label} `, bold);
    return part;
  }));

  const svg = card.chart;
  const { width, height } = frame(svg, size);
  const pad = { left: 6, right: 6, top: 14, bottom: 16 };
  const slot = (width - pad.left - pad.right) / counts.length;
  const base = height - pad.bottom;
  const tallest = Math.log1p(Math.max(...counts, 1));
  const nodes = [svgNode("line", { class: "axis", x1: pad.left, x2: width - pad.right, y1: base, y2: base })];
  counts.forEach((count, index) => {
    if (count <= 0) return;
    const barHeight = Math.max((Math.log1p(count) / tallest) * (base - pad.top), 1);
    const bar = svgNode("rect", {
      class: "bar", "data-bucket": index, x: (pad.left + index * slot + 1).toFixed(1), y: (base - barHeight).toFixed(1),
      width: Math.max(slot - 2, 1).toFixed(1), height: barHeight.toFixed(1),
    });
    const range = index < bounds.length ? `≤ ${latency(bounds[index])}` : `> ${latency(bounds.at(-1))}`;
    bar.append(svgNode("title", {}, `${range}: ${integer.format(count)}`));
    nodes.push(bar);
  });
  // A bound's label under the edge it names, every few edges so that they do not overlap.
  const stride = Math.ceil(44 / slot);
  for (let index = 0; index < bounds.length; index += stride) {
    const x = pad.left + (index + 1) * slot;
    nodes.push(svgNode("text", { x: x.toFixed(1), y: height - 3, "text-anchor": "middle" }, latency(bounds[index])));
  }
  if (total === 0) {
    nodes.push(svgNode("text", { x: width / 2, y: base / 2 + pad.top / 2, "text-anchor": "middle" }, "none in this period"));
  }
  const shown = marks.filter(([, mark]) => mark !== null);
  const xs = shown.map(([, mark]) => pad.left + mark.position * slot);
  const labels = spread(xs, 28, 14, width - 14);
  shown.forEach(([label], index) => {
    const x = xs[index].toFixed(1);
    nodes.push(svgNode("line", { class: "mark", x1: x, x2: x, y1: pad.top - 2, y2: base }));
    nodes.push(svgNode("text", { class: "mark-label", x: labels[index].toFixed(1), y: pad.top - 4, "text-anchor": "middle" }, label));
  });
  svg.replaceChildren(...nodes);
}

// Where to centre labels meant to sit at the ascending positions xs: inside [low, high] and
// at least `gap` apart, as near their positions as that allows (the p50 and p99 of a
// histogram often fall in the same bucket).
function spread(xs, gap, low, high) {
  const placed = [];
  xs.forEach((x, index) => placed.push(Math.max(x, low, index ? placed[index - 1] + gap : low)));
  for (let index = placed.length - 1; index >= 0; index -= 1) {
    placed[index] = Math.min(placed[index], index < placed.length - 1 ? placed[index + 1] - gap : high);
  }
  return placed;
}

// Charts: inline SVG, sized to the element as laid out.

function svgNode(tag, attributes = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== null) node.textContent = text;
  return node;
}

// Chart coordinates are the element's pixels.
function frame(svg, size) {
  svg.setAttribute("viewBox", `0 0 ${size.width} ${size.height}`);
  return size;
}

// The smallest of 1, 2, 2.5 and 5 times a power of ten not below `value`: a round axis top.
function roundUp(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 2.5, 5, 10].map((step) => step * power).find((top) => top >= value);
}

// Lines of [time, value] points over the period, from zero up. With axes: a grid, value labels
// on the left and times (relative to now) below; without, a bare sparkline.
function timeChart(svg, size, lines, period, axes) {
  const { width, height } = frame(svg, size);
  const pad = axes ? { left: 46, right: 10, top: 8, bottom: 18 } : { left: 1, right: 1, top: 2, bottom: 2 };
  const top = roundUp(Math.max(0, ...lines.flatMap((line) => line.points.map(([, value]) => value))));
  const x = (time) => pad.left + ((time - period.from) / (period.to - period.from)) * (width - pad.left - pad.right);
  const y = (value) => height - pad.bottom - (value / top) * (height - pad.top - pad.bottom);
  const nodes = [];
  if (axes) {
    for (const fraction of [0, 0.5, 1]) {
      const level = y(top * fraction).toFixed(1);
      nodes.push(svgNode("line", { class: fraction ? "grid" : "axis", x1: pad.left, x2: width - pad.right, y1: level, y2: level }));
      nodes.push(svgNode("text", { x: pad.left - 6, y: +level + 3, "text-anchor": "end" }, compact.format(top * fraction)));
    }
    const spanSeconds = (period.to - period.from) / 1000;
    const step = [5, 10, 15, 30, 60, 120].find((seconds) => spanSeconds / seconds <= 6) ?? 300;
    for (let ago = 0; ago <= spanSeconds; ago += step) {
      const label = ago === 0 ? "now" : ago < 60 ? `−${ago} s` : `−${ago / 60} min`;
      const anchor = ago === 0 ? "end" : "middle";
      nodes.push(svgNode("text", { x: x(period.to - ago * 1000).toFixed(1), y: height - 4, "text-anchor": anchor }, label));
    }
  }
  for (const line of lines) {
    const drawn = line.points.map(([time, value]) => `${x(time).toFixed(1)},${y(value).toFixed(1)}`).join(" ");
    if (line.area && line.points.length > 1) {
      const floor = y(0).toFixed(1);
      const first = x(line.points[0][0]).toFixed(1);
      const last = x(line.points.at(-1)[0]).toFixed(1);
      nodes.push(svgNode("polygon", { class: "area", points: `${first},${floor} ${drawn} ${last},${floor}` }));
    }
    nodes.push(svgNode("polyline", { class: line.name, "data-series": line.name, points: drawn }));
  }
  svg.replaceChildren(...nodes);
}

byId("filter").addEventListener("input", () => {
  if (lastAnswer !== null) draw(lastAnswer.stats, lastAnswer.status);
});
poll();
