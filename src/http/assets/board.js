/* board.js: linkd's live board. One WebSocket ("linkd-board") brings a
 * snapshot, then deltas and stats as they happen; nothing is polled. Every
 * countdown is computed here from linkd's clock (now_ms, scale), so time
 * passing costs no traffic. Supervisor actions go to the JSON API with the
 * admin token typed into the header (kept for this tab only). */
"use strict";

const S = {
  incidents: new Map(), terminals: [], departments: [], compliance: null, rules: null,
  nowMs: 0, scale: 1, recvAt: 0, actions: false, open: 0, limit: 200, dirty: false,
  keep: 0, /* the server's --board-max: how many incidents a snapshot carries */
};
const LEGS = ["acknowledge", "arrive", "resolve"];
const LEG_SHORT = {acknowledge: "ack", arrive: "arrive", feedback: "feedback", resolve: "resolve"};
const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else if (k === "title") e.title = v;
    else e[k] = v;
  }
  for (const k of kids) if (k !== null && k !== undefined) e.append(k);
  return e;
}

function domainNow() {
  return S.nowMs + (performance.now() - S.recvAt) * S.scale;
}

function fmtLeft(ms) {
  const neg = ms < 0, a = Math.abs(ms) / 1000;
  let s;
  if (a >= 86400) s = Math.floor(a / 86400) + "d " + Math.floor((a % 86400) / 3600) + "h";
  else if (a >= 3600) s = Math.floor(a / 3600) + ":" + String(Math.floor((a % 3600) / 60)).padStart(2, "0") + ":" + String(Math.floor(a % 60)).padStart(2, "0");
  else s = Math.floor(a / 60) + ":" + String(Math.floor(a % 60)).padStart(2, "0");
  return (neg ? "-" : "") + s;
}

function fmtSecs(s) {
  if (!s) return "-";
  if (s >= 86400) return (s / 86400).toFixed(1) + "d";
  if (s >= 3600) return (s / 3600).toFixed(1) + "h";
  if (s >= 60) return (s / 60).toFixed(1) + "m";
  return s.toFixed(0) + "s";
}

function clockText(ms) {
  return new Date(ms).toLocaleTimeString("en-GB", {hour12: false});
}

/* ---- the connection ---------------------------------------------------------- */

let backoff = 1000;

function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const token = new URLSearchParams(location.search).get("token");
  const ws = new WebSocket(proto + "//" + location.host + "/" + (token ? "?token=" + encodeURIComponent(token) : ""), "linkd-board");
  ws.onopen = () => { backoff = 1000; $("#conn").textContent = "live"; $("#conn").className = "conn up"; };
  ws.onclose = () => {
    $("#conn").textContent = "disconnected: retrying"; $("#conn").className = "conn down";
    setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, 10000);
  };
  ws.onmessage = (m) => receive(JSON.parse(m.data));
}

function receive(msg) {
  S.nowMs = msg.now_ms; S.scale = msg.scale || 1; S.recvAt = performance.now();
  if (msg.t === "snapshot") {
    S.incidents.clear();
    for (const inc of msg.incidents) S.incidents.set(inc.id, inc);
    S.keep = msg.limit || 0;
    S.rules = msg.rules; S.actions = msg.actions; S.terminals = msg.terminals;
    fillSelects(msg.departments);
  } else if (msg.t === "delta") {
    for (const inc of msg.upsert) S.incidents.set(inc.id, inc);
    for (const id of msg.remove) S.incidents.delete(id);
    if (msg.terminals) S.terminals = msg.terminals;
    prune();
  }
  if (msg.departments) S.departments = msg.departments;
  if (msg.compliance) S.compliance = msg.compliance;
  if (msg.open !== undefined) S.open = msg.open;
  S.dirty = true;
}

/* ---- departments and compliance ------------------------------------------------- */

function legCells(c) {
  if (!c) return [el("td"), el("td"), el("td")];
  const total = c.met + c.missed;
  return [
    el("td", {}, c.n ? fmtSecs(c.p90_s) + " / " + fmtSecs(c.p95_s) : "-"),
    el("td", {}, total ? Math.round((100 * c.met) / total) + "%" : "-"),
    el("td", {class: "bands"}, c.bands.join(" | ")),
  ];
}

function renderDepartments() {
  const body = $("#departments tbody");
  const comp = new Map(((S.compliance && S.compliance.departments) || []).map((d) => [d.department, d]));
  const rows = [];
  for (const d of S.departments) {
    const terms = S.terminals.filter((t) => t.department === d.id)
      .map((t) => el("span", {class: "term" + (t.online ? " online" : ""), title: t.id + (t.online ? " online" : " offline"), "data-terminal": t.id}));
    const c = comp.get(d.id) || {};
    rows.push(el("tr", {"data-department": d.id},
      el("td", {title: d.name}, d.id), el("td", {}, String(d.open_tasks)),
      el("td", {}, String(d.unacknowledged)), el("td", {}, String(d.escalated)),
      el("td", {}, ...terms, " " + d.terminals_online + "/" + d.terminals),
      ...legCells(c.acknowledge), ...legCells(c.arrive), ...legCells(c.resolve)));
  }
  body.replaceChildren(...rows);
  const slow = S.compliance && S.compliance.slowest;
  $("#slowest").textContent = slow ? "Slowest to acknowledge today: " + slow.department + " (p90 " + fmtSecs(slow.p90_s) + ")" : "";
}

/* ---- incidents ------------------------------------------------------------------- */

function pendingLegs(task) {
  if (task.state === "resolved") return [];
  return task.legs.filter((l) => !l.done_ms && !l.overdue_at_top);
}

function urgency(inc) {
  let due = Infinity;
  for (const t of inc.tasks) for (const l of pendingLegs(t)) due = Math.min(due, l.due_ms);
  return due;
}

/* ranked: <incs> most urgent first, in the server's order (src/http/urgent.c): late first
 * (overdue at the top of a chain, then legs past due), then by priority, then time left. */
function ranked(incs) {
  const now = domainNow();
  const list = incs.map((inc) => ({inc, due: urgency(inc)}));
  const late = (x) => (x.inc.overdue_at_top ? 2 : x.due < now ? 1 : 0);
  list.sort((a, b) => late(b) - late(a) || a.inc.priority_rank - b.inc.priority_rank || a.due - b.due || (a.inc.id < b.inc.id ? -1 : 1));
  return list.map((x) => x.inc);
}

function sorted() {
  const dept = $("#filter-dept").value, text = $("#filter-text").value.toLowerCase(), esc = $("#filter-escalated").checked;
  const list = [];
  for (const inc of S.incidents.values()) {
    if (dept && !inc.tasks.some((t) => t.department === dept)) continue;
    if (esc && !inc.escalated && !inc.overdue_at_top) continue;
    if (text && !(inc.id + " " + inc.summary + " " + (inc.district || "") + " " + (inc.grid || "")).toLowerCase().includes(text)) continue;
    list.push(inc);
  }
  return ranked(list);
}

/* prune keeps the page bounded: deltas add every incident that changes, so past twice what a
 * snapshot carries the least urgent go. One that turns urgent changes (an escalation, a miss)
 * and comes back with that change. */
function prune() {
  if (!S.keep || S.incidents.size <= 2 * S.keep) return;
  for (const inc of ranked([...S.incidents.values()]).slice(S.keep)) S.incidents.delete(inc.id);
}

function taskChip(inc, t) {
  const over = t.legs.some((l) => l.overdue_at_top);
  const chip = el("span", {class: "task" + (t.level > 0 ? " escalated" : "") + (over ? " overdue" : "") + (t.state === "resolved" ? " resolved" : ""),
                           "data-task": t.task_id, "data-level": String(t.level), title: (t.reason || "") + " [" + t.rule + "]"},
    el("span", {class: "dept"}, t.department),
    el("span", {class: "holder"}, t.terminal),
    t.level > 0 ? el("span", {class: "level"}, "L" + t.level + " " + t.level_name) : null,
    el("span", {class: "state"}, t.state));
  for (const l of t.legs) {
    if (l.overdue_at_top) chip.append(el("span", {class: "countdown late", "data-task": t.task_id, "data-leg": l.leg}, LEG_SHORT[l.leg] + " overdue"));
    else if (!l.done_ms && t.state !== "resolved")
      chip.append(el("span", {class: "countdown", "data-task": t.task_id, "data-leg": l.leg, "data-due": String(l.due_ms)}, LEG_SHORT[l.leg] + " " + fmtLeft(l.due_ms - domainNow())));
  }
  if (S.actions && t.state !== "resolved")
    chip.append(el("button", {class: "act", type: "button", "data-task": t.task_id, "data-incident": inc.id, "data-department": t.department, textContent: "act"}));
  return chip;
}

/* Rows are rebuilt only for incidents that changed (a delta replaces the
 * object), so a button stays the same element while the user reaches for it. */
const rowCache = new Map();

function buildRow(inc) {
  const tasks = el("td");
  for (const t of inc.tasks) tasks.append(taskChip(inc, t));
  if (S.actions) {
    tasks.append(el("button", {class: "act", type: "button", "data-incident": inc.id, "data-kind": "close", textContent: "close…"}));
    tasks.append(el("button", {class: "act", type: "button", "data-incident": inc.id, "data-kind": "merge", textContent: "merge…"}));
    if (inc.merged) tasks.append(el("button", {class: "act", type: "button", "data-incident": inc.id, "data-kind": "split", textContent: "split…"}));
  }
  /* Events that joined it: duplicate calls (rule) and incidents a supervisor merged in. */
  const merged = inc.merged ? el("div", {class: "merged", title: inc.merged.map((m) => (m.incident || m.event_id) + " [" + m.rule + "]").join("\n")},
    "+" + inc.merged.length + " merged: " + inc.merged.map((m) => m.incident || m.event_id).join(", ")) : null;
  return el("tr", {class: "incident" + (inc.escalated ? " escalated" : "") + (inc.overdue_at_top ? " overdue" : ""), "data-id": inc.id},
    el("td", {}, el("span", {class: "prio " + inc.priority}, inc.priority)),
    el("td", {}, el("div", {}, inc.id), el("div", {class: "summary"}, inc.summary), merged),
    el("td", {}, (inc.district || "") + (inc.grid ? " / " + inc.grid : "")),
    el("td", {}, clockText(inc.opened_at_ms)),
    tasks);
}

function renderIncidents() {
  const list = sorted();
  const rows = [];
  for (const inc of list.slice(0, S.limit)) {
    let c = rowCache.get(inc.id);
    if (!c || c.inc !== inc || c.actions !== S.actions) {
      c = {inc, actions: S.actions, tr: buildRow(inc)};
      rowCache.set(inc.id, c);
    }
    rows.push(c.tr);
  }
  for (const id of rowCache.keys()) if (!S.incidents.has(id)) rowCache.delete(id);
  const body = $("#incidents tbody");
  const same = body.children.length === rows.length && rows.every((r, i) => body.children[i] === r);
  if (!same) body.replaceChildren(...rows);
  /* A snapshot carries the most urgent open incidents only (at most 2,000); S.open counts them all. */
  const partial = S.incidents.size < S.open ? ", the " + S.incidents.size + " most urgent here" : "";
  $("#shown").textContent = "showing " + Math.min(S.limit, list.length) + " of " + list.length + " (" + Math.max(S.open, S.incidents.size) + " open" + partial + ")";
  $("#more").hidden = list.length <= S.limit;
}

function tick() {
  const now = domainNow();
  if (S.recvAt) $("#clock").textContent = clockText(now) + (S.scale !== 1 ? " (x" + S.scale + ")" : "");
  for (const c of document.querySelectorAll(".countdown[data-due]")) {
    const left = Number(c.dataset.due) - now;
    c.textContent = LEG_SHORT[c.dataset.leg] + " " + fmtLeft(left);
    c.classList.toggle("late", left < 0);
    c.classList.toggle("soon", left >= 0 && left < 60000 * Math.max(1, S.scale / 60));
  }
}

function render() {
  if (S.dirty) {
    S.dirty = false;
    renderDepartments();
    renderIncidents();
    $("#open-count").textContent = Math.max(S.open, S.incidents.size) + " open incidents";
    if (S.rules) $("#rules").textContent = "rules " + S.rules.version + (S.rules.last_reload_ok ? "" : " (last reload FAILED)");
  }
  tick();
}

/* ---- supervisor actions ---------------------------------------------------------- */

function fillSelects(departments) {
  const keep = $("#filter-dept").value;
  $("#filter-dept").replaceChildren(el("option", {value: ""}, "all"), ...departments.map((d) => el("option", {value: d.id}, d.id)));
  $("#filter-dept").value = keep;
  $("#act-department").replaceChildren(el("option", {value: ""}, "(same)"), ...departments.map((d) => el("option", {value: d.id}, d.id)));
  $("#act-terminal").replaceChildren(el("option", {value: ""}, "(duty terminal)"), ...S.terminals.map((t) => el("option", {value: t.id}, t.id)));
}

let target = null;

function showFields() {
  const kind = $("#act-kind").value;
  for (const f of ["extend", "reassign", "close", "merge", "split"])
    for (const e of document.querySelectorAll(".f-" + f)) e.hidden = f !== kind;
}

function openPanel(b) {
  target = {incident: b.dataset.incident, department: b.dataset.department || null};
  $("#act-target").textContent = target.department ? target.incident + " / " + target.department : target.incident;
  const kind = $("#act-kind");
  const whole = ["close", "merge", "split"];
  const inc = S.incidents.get(target.incident);
  for (const o of kind.options)
    o.disabled = target.department ? whole.includes(o.value) : !whole.includes(o.value) || (o.value === "split" && !(inc && inc.merged));
  kind.value = target.department ? "escalate" : b.dataset.kind || "close";
  /* Merge: any other open incident, nearest in time first; split: its merged events. */
  const others = [...S.incidents.values()].filter((x) => x.id !== target.incident)
    .sort((x, y) => Math.abs(x.opened_at_ms - (inc ? inc.opened_at_ms : 0)) - Math.abs(y.opened_at_ms - (inc ? inc.opened_at_ms : 0)));
  $("#act-merge").replaceChildren(...others.map((x) => el("option", {value: x.id}, x.id + " " + x.summary.slice(0, 40))));
  $("#act-split").replaceChildren(...(inc && inc.merged ? inc.merged : []).map((m) =>
    el("option", {value: m.stream_id}, (m.incident ? "incident " + m.incident : "event " + m.event_id) + " [" + m.rule + "]")));
  $("#act-result").textContent = "";
  showFields();
  $("#action-panel").hidden = false;
}

async function submit() {
  const kind = $("#act-kind").value;
  const body = {by: $("#act-by").value, reason: $("#act-reason").value};
  if (kind === "extend") { body.leg = $("#act-leg").value; body.extend_by = $("#act-extend").value; }
  if (kind === "reassign") {
    if ($("#act-department").value) body.department = $("#act-department").value;
    if ($("#act-terminal").value) body.terminal = $("#act-terminal").value;
  }
  if (kind === "close") body.disposition = $("#act-disposition").value;
  if (kind === "merge") body.incident = $("#act-merge").value;
  if (kind === "split") body.event_id = $("#act-split").value;
  const whole = kind === "close" || kind === "merge" || kind === "split";
  const path = "/api/incidents/" + encodeURIComponent(target.incident) +
    (whole ? "/" + kind : "/tasks/" + encodeURIComponent(target.department) + "/" + kind);
  const token = $("#token").value;
  sessionStorage.setItem("linkd-token", token);
  const res = $("#act-result");
  res.className = ""; res.textContent = "sending…";
  try {
    const r = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json", "Authorization": "Bearer " + token}, body: JSON.stringify(body)});
    const j = await r.json();
    res.className = r.ok ? "ok" : "err";
    res.textContent = r.ok ? "done: " + kind + (j.new_incident ? " -> " + j.new_incident : "") : r.status + ": " + j.error;
  } catch (e) {
    res.className = "err"; res.textContent = "failed: " + e;
  }
}

document.addEventListener("click", (e) => {
  const b = e.target.closest("button.act");
  if (b) openPanel(b);
});
$("#act-kind").addEventListener("change", showFields);
$("#act-submit").addEventListener("click", submit);
$("#act-cancel").addEventListener("click", () => { $("#action-panel").hidden = true; });
$("#more").addEventListener("click", () => { S.limit += 200; S.dirty = true; });
for (const id of ["#filter-dept", "#filter-text", "#filter-escalated"]) $(id).addEventListener("input", () => { S.dirty = true; });
$("#token").value = sessionStorage.getItem("linkd-token") || "";

setInterval(render, 500);
connect();
