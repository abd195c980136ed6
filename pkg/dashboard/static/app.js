// The dashboard's page: one EventSource on /events; every event is the whole picture (see
// pkg/dashboard), rendered with textContent only (nothing from the server is parsed as HTML).
"use strict";

const MAX_ROWS = 500; // rows drawn per table; the filters narrow what they show
const $ = (id) => document.getElementById(id);
let last = null;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function num(n) { return Number(n || 0).toLocaleString("en-US"); }

function duration(s) {
  if (s === null || s === undefined) return "–";
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (h > 0) return h + "h " + m + "m";
  if (m > 0) return m + "m " + sec + "s";
  return sec + "s";
}

function time(iso) {
  const d = new Date(iso);
  return isNaN(d) ? "" : d.toLocaleTimeString();
}

function states(counts) {
  const span = el("span", null, "jbs");
  for (const k of Object.keys(counts || {}).sort()) {
    const s = el("span", counts[k] + " " + k, "state-" + k);
    s.dataset.state = k;
    span.appendChild(s);
  }
  return span;
}

function fill(tbody, rows) {
  const frag = document.createDocumentFragment();
  for (const r of rows) frag.appendChild(r);
  tbody.replaceChildren(frag);
}

function options(select, values) {
  const cur = select.value;
  const keep = select.options[0];
  select.replaceChildren(keep);
  for (const v of values) select.appendChild(new Option(v, v));
  select.value = values.includes(cur) ? cur : "";
}

function renderPlans(snap) {
  const rows = snap.plans.map((p) => {
    const tr = el("tr");
    tr.dataset.plan = p.id;
    tr.dataset.state = p.state;
    // A state may be words ("ended incomplete"): its class is one token.
    tr.append(el("td", p.id), el("td", p.state, "state-" + p.state.replace(/[^a-z]+/g, "-")));
    const jbs = el("td"); jbs.appendChild(states(p.jobsByState)); tr.appendChild(jbs);
    tr.append(el("td", num(p.specs), "num"), el("td", num(p.specsPending), "num"),
      el("td", num(p.specsDeadLettered), "num"), el("td", num(p.objects), "num"), el("td", num(p.records), "num"));
    const a = el("a", "run report"); a.href = p.report; a.target = "_blank";
    const td = el("td"); td.appendChild(a); tr.appendChild(td);
    return tr;
  });
  fill($("plans").tBodies[0], rows);
  $("plans-note").textContent = snap.plansTotal > snap.plans.length ? "(newest " + snap.plans.length + " of " + snap.plansTotal + ")" : "";
}

function renderJobs(snap) {
  const fs = $("filter-state").value, fp = $("filter-plan").value;
  const match = snap.jobs.filter((j) => (!fs || j.state === fs) && (!fp || j.plan === fp));
  const rows = match.slice(0, MAX_ROWS).map((j) => {
    const tr = el("tr");
    tr.dataset.job = j.id;
    tr.dataset.state = j.state;
    tr.append(el("td", j.id), el("td", j.plan), el("td", j.kind), el("td", j.target, "target"), el("td", j.state, "state state-" + j.state));
    const pct = el("td", null, "pct");
    const bar = el("div", null, "bar"), inner = el("div");
    inner.style.width = (j.percent === null ? 0 : j.percent) + "%";
    bar.appendChild(inner);
    pct.append(bar, el("span", j.percent === null ? "–" : j.percent.toFixed(j.percent === 100 ? 0 : 1) + " %", "percent"));
    tr.appendChild(pct);
    tr.append(el("td", num(j.objects) + " / " + (j.expected ? num(j.expected) : "?"), "num"),
      el("td", num(Math.round(j.rate)), "num"), el("td", duration(j.etaSeconds), "num"), el("td", num(j.records), "num"));
    const thr = [];
    if (j.postponed) thr.push(j.postponed + " postponed");
    if (j.sqlThrottleMs) thr.push(duration(j.sqlThrottleMs / 1000) + " SQL wait");
    tr.append(el("td", thr.join(", ")), el("td", j.error || "", "err"));
    return tr;
  });
  fill($("jobs").tBodies[0], rows);
  let note = "";
  if (snap.jobsShown < snap.jobsTotal) note = "(kept: " + num(snap.jobsShown) + " of " + num(snap.jobsTotal) + ", live first) ";
  if (match.length > rows.length) note += "(drawn: " + rows.length + " of " + num(match.length) + "; filter to see others)";
  $("jobs-note").textContent = note;
}

function renderDead(snap) {
  const dl = snap.deadLetters;
  $("dead-total").textContent = num(dl.total);
  const rows = dl.recent.map((d) => {
    const tr = el("tr");
    tr.dataset.seq = d.seq;
    tr.dataset.stage = d.stage;
    tr.append(el("td", time(d.at)), el("td", d.stage), el("td", d.subject, "target"), el("td", num(d.deliveries), "num"), el("td", d.reason, "reason"));
    return tr;
  });
  fill($("dead").tBodies[0], rows);
  $("dead-note").textContent = dl.total > dl.recent.length ? "(newest " + dl.recent.length + " of " + num(dl.total) + ")" : "";
}

function renderThrottle(snap) {
  const t = snap.throttling;
  $("throttle-summary").textContent = num(t.postponed) + " JobPostponed, " + duration(t.sqlThrottleMs / 1000) +
    " SharePoint SQL throttling wait; " + (t.hosts.length ? t.hosts.length + " host(s) paused:" : "no host paused");
  fill($("throttle-hosts"), t.hosts.map((h) => {
    const li = el("li", h.host + " until " + time(h.until));
    li.dataset.host = h.host;
    return li;
  }));
}

function render(snap) {
  last = snap;
  $("at").textContent = "as of " + time(snap.at);
  $("jobs-total").textContent = num(snap.jobsTotal);
  $("jobs-by-state").replaceChildren(states(snap.jobsByState));
  const v = $("validation");
  v.hidden = !snap.validation;
  if (snap.validation) v.href = snap.validation;
  const p = $("problems");
  p.hidden = snap.problems.length === 0;
  p.textContent = snap.problems.join("\n");
  options($("filter-state"), Object.keys(snap.jobsByState).sort());
  options($("filter-plan"), snap.plans.map((pl) => pl.id));
  renderPlans(snap);
  renderJobs(snap);
  renderThrottle(snap);
  renderDead(snap);
}

function connect() {
  const conn = $("conn");
  const es = new EventSource("/events");
  es.addEventListener("snapshot", (e) => {
    conn.dataset.conn = "live";
    conn.textContent = "live";
    render(JSON.parse(e.data));
  });
  // EventSource reconnects by itself (the server asks for 2 s).
  es.onerror = () => {
    conn.dataset.conn = "lost";
    conn.textContent = "reconnecting…";
  };
}

for (const id of ["filter-state", "filter-plan"]) {
  $(id).addEventListener("change", () => { if (last) renderJobs(last); });
}
connect();
