// Hive's web view: the runs list, a run's live tree and a node's detail.
//
// Everything the server sends is text. It reaches the DOM only through
// textContent and createTextNode (see el below); no server string is ever
// parsed as HTML. Markdown and code are rendered by small DOM builders.
"use strict";

(function () {
  const ROW_H = 24;          // px, fixed so the tree can render only visible rows
  const OVERSCAN = 40;       // rows rendered above and below the viewport
  const COLLAPSE_AT = 50;    // more finished children than this fold behind a toggle
  const FINAL = new Set(["done", "failed", "cancelled", "escalated"]);

  // el builds an element; string children become text nodes.
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const k in attrs) {
        const v = attrs[k];
        if (v == null || v === false) continue;
        if (k === "class") e.className = v;
        else if (k === "text") e.textContent = v;
        else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
        else e.setAttribute(k, v);
      }
    }
    for (const c of kids) add(e, c);
    return e;
  }
  function add(e, c) {
    if (c == null || c === false) return;
    if (Array.isArray(c)) { for (const x of c) add(e, x); return; }
    e.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
  }
  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); }

  // Encode an id that may contain "/" path by path segment.
  // visible shows the characters that change how text displays without
  // being seen (bidi overrides and isolates, zero-width ones, controls)
  // as \u{…} escapes: what a person approves must read as what it is.
  function visible(s) {
    // Code points, not UTF-16 units: tag characters (U+E0000–E007F, which
    // can spell a hidden sentence) and the supplementary variation
    // selectors are astral.
    return String(s).replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb\u{1bca0}-\u{1bca3}\u{1d173}-\u{1d17a}\u{e0000}-\u{e0fff}]/gu,
      (c) => "\\u{" + c.codePointAt(0).toString(16).padStart(4, "0") + "}");
  }
  function seg(id) { return String(id).split("/").map(encodeURIComponent).join("/"); }

  async function api(method, path, body) {
    const opts = { method, headers: {}, credentials: "same-origin" };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(path, opts);
    let data = null;
    try { data = await r.json(); } catch (_) { /* not JSON */ }
    if (!r.ok) {
      const msg = data && data.error ? (data.error.message || data.error.code) : r.status + " " + r.statusText;
      const err = new Error(msg);
      err.status = r.status;
      throw err;
    }
    return data;
  }

  // Formatting.
  function usd(n) {
    if (n == null || isNaN(n)) return "$0";
    if (n === 0) return "$0";
    if (n < 0) return "-" + usd(-n);
    if (n < 0.01) return "$" + n.toFixed(5);
    if (n < 1) return "$" + n.toFixed(4);
    return "$" + n.toFixed(2);
  }
  const nanosUSD = (n) => (n || 0) / 1e9;
  function tokens(u) {
    if (!u) return 0;
    return (u.input_tokens || 0) + (u.output_tokens || 0) + (u.cache_write_tokens || 0) + (u.cache_read_tokens || 0);
  }
  function kfmt(n) { return n >= 10000 ? (n / 1000).toFixed(0) + "k" : n >= 1000 ? (n / 1000).toFixed(1) + "k" : String(n); }
  function when(s) {
    if (!s || s.startsWith("0001")) return "";
    const d = new Date(s);
    return isNaN(d) ? "" : d.toLocaleString();
  }
  function duration(n) {
    if (!n.started || n.started.startsWith("0001")) return "";
    const a = new Date(n.started), b = n.ended && !n.ended.startsWith("0001") ? new Date(n.ended) : new Date();
    const s = (b - a) / 1000;
    return s < 60 ? s.toFixed(1) + "s" : Math.floor(s / 60) + "m" + Math.round(s % 60) + "s";
  }

  function spendBar(cost, budget) {
    const frac = budget > 0 ? Math.min(1, cost / budget) : 0;
    const fill = el("span", { class: "fill" + (frac > 0.9 ? " hot" : "") });
    fill.style.width = (frac * 100).toFixed(1) + "%";
    const label = el("span", { class: "label", text: usd(cost) + (budget > 0 ? " / " + usd(budget) : "") });
    return el("span", { class: "spend" }, el("span", { class: "bar" }, fill), label);
  }
  function setSpend(bar, cost, budget) {
    const frac = budget > 0 ? Math.min(1, cost / budget) : 0;
    const fill = bar.querySelector(".fill");
    fill.style.width = (frac * 100).toFixed(1) + "%";
    fill.className = "fill" + (frac > 0.9 ? " hot" : "");
    bar.querySelector(".label").textContent = usd(cost) + (budget > 0 ? " / " + usd(budget) : "");
  }
  function statusBadge(s) { return el("span", { class: "status st-" + s, text: s || "?" }); }
  function verdictBadge(v) {
    if (!v || !v.outcome) return null;
    return el("span", { class: "verdict v-" + v.outcome, title: v.verifier || "", text: v.outcome });
  }

  // Natural order of node ids: "lead" first, then "2" < "3" < "3^1" < "10";
  // an escalation "3^1" sorts right after "3".
  function idKey(id) {
    if (id === "lead") return [[-1, ""]];
    const out = [];
    const re = /(\d+)|(\D+)/g;
    let m;
    while ((m = re.exec(id))) out.push(m[1] != null ? [0, Number(m[1])] : [1, m[2]]);
    return out;
  }
  function cmpKey(a, b) {
    for (let i = 0; i < a.length && i < b.length; i++) {
      if (a[i][0] !== b[i][0]) return a[i][0] - b[i][0];
      if (a[i][1] < b[i][1]) return -1;
      if (a[i][1] > b[i][1]) return 1;
    }
    return a.length - b.length;
  }

  // ---------- routing ----------

  let view = null; // the current view, with a stop() to release its streams
  function route() {
    if (view && view.stop) view.stop();
    view = null;
    const main = document.getElementById("main");
    clear(main);
    const crumb = document.getElementById("crumb");
    clear(crumb);
    document.getElementById("conn").textContent = "";
    const h = location.hash.replace(/^#/, "");
    // #/runs/ID[/nodes/NODE][?view=timeline]
    const m = h.match(/^\/runs\/([^/?]+)(?:\/nodes\/([^?]+))?(?:\?view=(tree|timeline))?$/);
    if (m) {
      view = runView(main, decodeURIComponent(m[1]), m[2] ? decodeURIComponent(m[2]) : null, m[3] || "tree");
    } else {
      view = runsView(main);
    }
  }
  window.addEventListener("hashchange", route);
  document.addEventListener("DOMContentLoaded", route);

  // ---------- runs list ----------

  function runsView(main) {
    const err = el("p", { class: "error", hidden: true });
    const task = el("textarea", { name: "task", rows: 3, required: true, placeholder: "What should the swarm do?" });
    const lead = el("input", { name: "lead", placeholder: "default" });
    const tiers = el("input", { name: "tiers", placeholder: "default (comma-separated, cheapest first)" });
    const budget = el("input", { name: "budget", type: "number", step: "0.01", min: "0", value: "1" });
    const submit = el("button", { type: "submit", text: "Start run" });
    const form = el("form", { class: "start", id: "start-form" },
      el("h2", { text: "Start a run" }),
      el("label", null, "Task", task),
      el("div", { class: "row2" },
        el("label", null, "Lead", lead),
        el("label", null, "Tiers", tiers),
        el("label", null, "Budget (USD)", budget)),
      submit, err);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      err.hidden = true;
      const body = { task: task.value, budget_usd: Number(budget.value) || 0 };
      if (lead.value.trim()) body.lead = lead.value.trim();
      const t = tiers.value.split(",").map((s) => s.trim()).filter(Boolean);
      if (t.length) body.tiers = t;
      submit.disabled = true;
      try {
        const r = await api("POST", "/v1/runs", body);
        location.hash = "#/runs/" + encodeURIComponent(r.id);
      } catch (e) {
        err.textContent = "Could not start the run: " + e.message;
        err.hidden = false;
      } finally {
        submit.disabled = false;
      }
    });
    const tbody = el("tbody");
    const table = el("table", { class: "runs" },
      el("thead", null, el("tr", null, ["Status", "Spend", "Task", "Updated", "Run"].map((h) => el("th", { text: h })))),
      tbody);
    const listErr = el("p", { class: "error", hidden: true });
    main.appendChild(el("section", { class: "runs-view" }, form, el("h2", { text: "Runs" }), listErr, table));

    let timer = 0, stopped = false;
    async function load() {
      try {
        const data = await api("GET", "/v1/runs");
        if (stopped) return;
        listErr.hidden = true;
        clear(tbody);
        const runs = (data && data.runs) || [];
        if (!runs.length) tbody.appendChild(el("tr", null, el("td", { colspan: 5, class: "muted", text: "No runs yet." })));
        for (const r of runs) {
          const href = "#/runs/" + encodeURIComponent(r.id);
          const tr = el("tr", { class: "run-row", "data-id": r.id },
            el("td", null, statusBadge(r.status)),
            el("td", null, spendBar(r.cost_usd || 0, r.budget_usd || 0)),
            el("td", { class: "task" }, el("a", { href, text: (r.task || "").slice(0, 200) })),
            el("td", { class: "muted", text: when(r.updated || r.created) }),
            el("td", { class: "mono muted", text: r.id }));
          tr.addEventListener("click", (ev) => { if (ev.target.tagName !== "A") location.hash = href; });
          tbody.appendChild(tr);
        }
      } catch (e) {
        listErr.textContent = "Could not list runs: " + e.message;
        listErr.hidden = false;
      }
      if (!stopped) timer = setTimeout(load, 3000);
    }
    load();
    return { stop() { stopped = true; clearTimeout(timer); } };
  }

  // ---------- run view ----------

  function runView(main, runID, openNode, openView) {
    document.getElementById("crumb").appendChild(el("span", { class: "mono", text: "run " + runID }));
    const conn = document.getElementById("conn");
    const st = {
      run: null,
      nodes: new Map(),     // id → node
      kids: new Map(),      // parent id → [child ids], sorted
      roll: new Map(),      // id → subtree cost (nanos)
      rows: new Map(),      // id → rendered row element (only rows in view)
      expanded: new Set(),  // nodes whose finished children the user unfolded
      flat: [],             // visible entries: {id} or {toggle: parent, n}
      dirty: new Set(),     // ids whose row needs an update
      structure: true,      // flat must be recomputed
      frame: 0,
      costNanos: 0,
      selected: openNode,
      view: "tree",         // or "timeline"
    };

    const head = el("div", { class: "run-head" });
    const title = el("h2", { class: "run-task" });
    const runStatus = el("span", { class: "status" });
    const bar = spendBar(0, 0);
    const counts = el("span", { class: "counts muted" });
    const answer = el("div", { class: "answer", hidden: true });
    const cancelBtn = el("button", { class: "small", text: "Cancel" });
    const resumeBtn = el("button", { class: "small", text: "Resume" });
    // What the run waits for a person to allow, with the buttons to
    // decide it (the policy's held tasks, reports and tool calls).
    const approvals = el("div", { class: "approvals", id: "approvals", hidden: true });
    head.append(el("div", { class: "run-line" }, runStatus, bar, counts, cancelBtn, resumeBtn), title, approvals, answer);
    cancelBtn.addEventListener("click", async () => { try { await api("POST", "/v1/runs/" + seg(runID) + "/cancel"); } catch (e) { showErr(e); } });
    resumeBtn.addEventListener("click", async () => {
      try { await api("POST", "/v1/runs/" + seg(runID) + "/resume"); stream(); } catch (e) { showErr(e); }
    });
    const errBox = el("p", { class: "error", hidden: true });
    function showErr(e) { errBox.textContent = e.message || String(e); errBox.hidden = false; }

    async function loadApprovals() {
      try {
        const data = await api("GET", "/v1/runs/" + seg(runID) + "/approvals");
        renderApprovals(data.approvals || []);
      } catch (e) { showErr(e); }
    }
    function renderApprovals(list) {
      clear(approvals);
      approvals.hidden = list.length === 0;
      for (const a of list) {
        const note = el("input", { type: "text", class: "approval-note", placeholder: "why (recorded with your decision)", "aria-label": "note" });
        const yes = el("button", { class: "small approve", text: "Approve" });
        const no = el("button", { class: "small deny", text: "Deny" });
        const decide = async (approve) => {
          yes.disabled = no.disabled = true;
          try { await api("POST", "/v1/runs/" + seg(runID) + "/approvals/" + seg(a.id), { approve, note: note.value, by: "page" }); } catch (e) { showErr(e); }
          loadApprovals();
        };
        yes.addEventListener("click", () => decide(true));
        no.addEventListener("click", () => decide(false));
        approvals.appendChild(el("div", { class: "approval", "data-id": a.id },
          el("div", { class: "approval-head" }, el("strong", { text: "Waiting for you: " }), el("span", { text: a.id === a.kind ? a.kind : a.kind + " " + a.id })),
          el("pre", { class: "approval-what", text: visible(a.what || "") }),
          el("div", { class: "approval-actions" }, note, yes, no)));
      }
    }

    const treeHead = el("div", { class: "tree-head" },
      ["", "node", "role", "model", "tokens", "$ node", "$ subtree", "verdict", "steps"].map((h) => el("span", { text: h })));
    const spacer = el("div", { class: "spacer" });
    const tree = el("div", { class: "tree", id: "tree" }, spacer);
    const panel = el("aside", { class: "panel", id: "panel" }, el("p", { class: "muted", text: "Click a node to see its conversation, verdict and artifacts." }));
    // The timeline: a row per node, a bar from dispatch to report.
    const tlAxis = el("div", { class: "tl-axis" });
    const tlSpacer = el("div", { class: "spacer" });
    const tlBody = el("div", { class: "tree timeline", id: "timeline" }, tlSpacer);
    // What the colours, hatching and marks mean.
    const sw = (cls, text) => el("span", { class: "tl-key" }, el("span", { class: "tl-sw " + cls }), el("span", { text: text }));
    const mk = (cls, glyph, text) => el("span", { class: "tl-key" }, el("span", { class: "tl-mark " + cls, text: glyph }), el("span", { text: text }));
    const tlLegend = el("div", { class: "tl-legend muted" },
      sw("st-done", "done"), sw("st-running", "running"), sw("st-failed", "failed"), sw("st-escalated", "escalated"), sw("st-cancelled", "cancelled"),
      sw("tl-wait", "waiting on rate limits"), sw("tl-cache", "share of prompt read from cache"),
      mk("retry", "↻", "retries"), mk("hedge", "⇉", "hedged calls"), mk("batch", "▤", "calls by batch"), mk("fix", "✎", "repairs"), mk("up", "↑", "escalated"));
    const tlWrap = el("div", { class: "tl-wrap", hidden: true }, tlLegend, tlAxis, tlBody);
    const treeWrap = el("div", { class: "tree-view" }, treeHead, tree);
    const tabs = el("div", { class: "tabs" },
      el("button", { class: "tab on", "data-view": "tree", text: "Tree" }),
      el("button", { class: "tab", "data-view": "timeline", text: "Timeline" }));
    tabs.addEventListener("click", (ev) => { const v = ev.target.dataset && ev.target.dataset.view; if (v) setView(v); });
    main.append(el("section", { class: "run-view" }, head, errBox,
      el("div", { class: "split" }, el("div", { class: "tree-wrap" }, tabs, treeWrap, tlWrap), panel)));

    tree.addEventListener("scroll", () => schedule());
    tlBody.addEventListener("scroll", () => schedule());
    window.addEventListener("resize", schedule);
    let tlTimer = 0;
    // setHash keeps the address on what is shown, so that a reload or a
    // shared link opens the same node in the same view.
    function setHash() {
      let h = "#/runs/" + encodeURIComponent(runID);
      if (st.selected) h += "/nodes/" + encodeURIComponent(st.selected);
      if (st.view !== "tree") h += "?view=" + st.view;
      history.replaceState(null, "", h);
    }
    function setView(v) {
      st.view = v;
      setHash();
      for (const b of tabs.children) b.classList.toggle("on", b.dataset.view === v);
      treeWrap.hidden = v !== "tree";
      tlWrap.hidden = v !== "timeline";
      clearInterval(tlTimer);
      // Bars of running nodes grow with the clock.
      if (v === "timeline") tlTimer = setInterval(() => { if (st.run && !FINAL.has(st.run.status)) schedule(); }, 1000);
      schedule();
    }

    function setRun(r) {
      st.run = r;
      runStatus.className = "status st-" + r.status;
      runStatus.textContent = r.status;
      title.textContent = r.task || "";
      if (r.cost_usd != null) st.costNanos = Math.max(st.costNanos, Math.round(r.cost_usd * 1e9));
      setSpend(bar, nanosUSD(st.costNanos), r.budget_usd || 0);
      const final = FINAL.has(r.status) || r.status === "interrupted";
      cancelBtn.hidden = final;
      resumeBtn.hidden = !(r.status === "interrupted" || r.status === "failed" || r.status === "cancelled");
      clear(answer);
      if (r.answer || r.error) {
        answer.hidden = false;
        if (r.error) answer.appendChild(el("p", { class: "error", text: r.error }));
        if (r.answer) answer.appendChild(markdown(r.answer));
      } else answer.hidden = true;
    }

    function putNode(n) {
      const old = st.nodes.get(n.id);
      st.nodes.set(n.id, n);
      st.dirty.add(n.id);
      if (!old || old.parent !== n.parent) {
        const p = n.parent || "";
        if (old) {
          const sib = st.kids.get(old.parent || "") || [];
          const i = sib.indexOf(n.id);
          if (i >= 0) sib.splice(i, 1);
        }
        let sib = st.kids.get(p);
        if (!sib) st.kids.set(p, (sib = []));
        // insert in natural order
        const k = idKey(n.id);
        let lo = 0, hi = sib.length;
        while (lo < hi) { const mid = (lo + hi) >> 1; if (cmpKey(idKey(sib[mid]), k) < 0) lo = mid + 1; else hi = mid; }
        sib.splice(lo, 0, n.id);
        st.structure = true;
      } else if (old.status !== n.status) {
        st.structure = true; // folding depends on statuses
      }
      if (!old || old.cost_nanos !== n.cost_nanos) st.rollDirty = true;
      if (n.id === st.selected) panelRefresh();
    }

    function schedule() {
      if (!st.frame) st.frame = requestAnimationFrame(flush);
    }

    // rollups: subtree cost per node, and which rows changed.
    function rollup() {
      const roll = new Map();
      const visit = (id) => {
        const n = st.nodes.get(id);
        let sum = n ? n.cost_nanos || 0 : 0;
        for (const c of st.kids.get(id) || []) sum += visit(c);
        roll.set(id, sum);
        return sum;
      };
      for (const r of st.kids.get("") || []) visit(r);
      // orphans whose parent is not known yet
      for (const [p, ids] of st.kids) if (p && !st.nodes.has(p)) for (const c of ids) if (!roll.has(c)) visit(c);
      for (const [id, v] of roll) if (st.roll.get(id) !== v) st.dirty.add(id);
      st.roll = roll;
    }

    function flatten() {
      const flat = [];
      const seen = new Set();
      const walk = (id, depth) => {
        if (seen.has(id)) return;
        seen.add(id);
        if (st.nodes.has(id)) flat.push({ id, depth });
        const kids = st.kids.get(id) || [];
        const done = kids.filter((c) => { const n = st.nodes.get(c); return n && n.status === "done" && !(st.kids.get(c) || []).length; });
        const fold = done.length > COLLAPSE_AT && !st.expanded.has(id);
        if (fold) {
          const hidden = new Set(done);
          for (const c of kids) if (!hidden.has(c)) walk(c, depth + 1);
          flat.push({ toggle: id, n: done.length, depth: depth + 1, open: false });
        } else {
          for (const c of kids) walk(c, depth + 1);
          if (done.length > COLLAPSE_AT) flat.push({ toggle: id, n: done.length, depth: depth + 1, open: true });
        }
      };
      for (const r of st.kids.get("") || []) walk(r, 0);
      for (const [p, ids] of st.kids) if (p && !st.nodes.has(p)) for (const c of ids) walk(c, 0);
      st.flat = flat;
    }

    function flush() {
      st.frame = 0;
      if (st.rollDirty) { st.rollDirty = false; rollup(); }
      if (st.view === "timeline") timeline();
      if (st.structure) { st.structure = false; flatten(); }
      spacer.style.height = st.flat.length * ROW_H + "px";
      const top = tree.scrollTop, h = tree.clientHeight || 600;
      const first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
      const last = Math.min(st.flat.length, Math.ceil((top + h) / ROW_H) + OVERSCAN);
      const keep = new Map();
      for (let i = first; i < last; i++) {
        const f = st.flat[i];
        const key = f.toggle != null ? "toggle:" + f.toggle : f.id;
        let row = st.rows.get(key);
        if (!row) {
          row = f.toggle != null ? toggleRow() : nodeRow();
          tree.appendChild(row);
          row._fresh = true;
        }
        if (row._top !== i * ROW_H) { row.style.top = i * ROW_H + "px"; row._top = i * ROW_H; }
        if (f.toggle != null) fillToggle(row, f);
        else if (row._fresh || st.dirty.has(f.id) || row._depth !== f.depth) fillRow(row, f.id, f.depth);
        row._fresh = false;
        keep.set(key, row);
      }
      for (const [key, row] of st.rows) if (!keep.has(key)) row.remove();
      st.rows = keep;
      st.dirty.clear();
      let done = 0, failed = 0, running = 0, input = 0, cached = 0, written = 0, saved = 0;
      for (const n of st.nodes.values()) {
        if (n.status === "done") done++;
        else if (n.status === "failed") failed++;
        else if (!FINAL.has(n.status)) running++;
        const u = n.usage || {};
        input += (u.input_tokens || 0) + (u.cache_read_tokens || 0) + (u.cache_write_tokens || 0);
        cached += u.cache_read_tokens || 0;
        written += u.cache_write_tokens || 0;
        saved += n.cache_saved_nanos || 0;
      }
      // Prompt caching: the share of input read from providers' caches and
      // the dollars that saved (hive show gives the same).
      const cache = cached + written > 0 ? " · cache " + Math.round(100 * cached / input) + "% read, saved " + usd(nanosUSD(saved)) : "";
      counts.textContent = st.nodes.size + " nodes · " + running + " active · " + done + " done" + (failed ? " · " + failed + " failed" : "") + cache;
    }

    function nodeRow() {
      const r = el("div", { class: "row" });
      r._c = {
        dot: el("span", { class: "dot" }),
        name: el("span", { class: "name" }),
        role: el("span", { class: "role" }),
        model: el("span", { class: "model" }),
        tok: el("span", { class: "num" }),
        cost: el("span", { class: "num" }),
        roll: el("span", { class: "num" }),
        verdict: el("span", { class: "vcell" }),
        steps: el("span", { class: "steps" }),
      };
      const c = r._c;
      r.append(c.dot, c.name, c.role, c.model, c.tok, c.cost, c.roll, c.verdict, c.steps);
      r.addEventListener("click", () => select(r._id));
      return r;
    }
    function fillRow(r, id, depth) {
      const n = st.nodes.get(id);
      r._id = id;
      r._depth = depth;
      r.dataset.id = id;
      r.className = "row st-" + n.status + (id === st.selected ? " sel" : "") + (id.includes("^") ? " esc" : "");
      const c = r._c;
      c.name.style.paddingLeft = depth * 16 + "px";
      c.name.textContent = (id.includes("^") ? "↑ " : "") + id + "  " + (n.name || "");
      c.name.title = n.name || "";
      c.dot.title = n.status;
      c.role.textContent = n.role || "";
      c.model.textContent = n.model || "";
      c.tok.textContent = kfmt(tokens(n.usage));
      c.cost.textContent = usd(nanosUSD(n.cost_nanos));
      const roll = st.roll.get(id) || 0;
      c.roll.textContent = (st.kids.get(id) || []).length ? "Σ " + usd(nanosUSD(roll)) : "";
      clear(c.verdict);
      add(c.verdict, verdictBadge(n.verdict));
      clear(c.steps);
      add(c.steps, steps(n));
    }
    // steps shows a node's ladder: its repairs, and escalation out or in.
    function steps(n) {
      const out = [];
      const esc = n.id.match(/\^(\d+)$/);
      if (esc) out.push(el("span", { class: "step up", text: "escalation " + esc[1] + " · tier " + (n.tier || 0) }));
      for (let i = 1; i <= (n.attempt || 0); i++) out.push(el("span", { class: "step fix", text: "repair " + i }));
      if (n.status === "escalated") out.push(el("span", { class: "step up", text: "escalated ↑" }));
      if (n.error) out.push(el("span", { class: "step err", title: n.error, text: "error" }));
      return out;
    }
    function toggleRow() {
      const r = el("div", { class: "row toggle" });
      r.addEventListener("click", () => {
        if (st.expanded.has(r._parent)) st.expanded.delete(r._parent); else st.expanded.add(r._parent);
        st.structure = true;
        schedule();
      });
      return r;
    }
    function fillToggle(r, f) {
      r._parent = f.toggle;
      r.dataset.toggle = f.toggle;
      r.textContent = "";
      r.appendChild(el("span", { class: "name", text: (f.open ? "▾ hide " : "… ") + f.n + " done" }));
      r.firstChild.style.paddingLeft = f.depth * 16 + "px";
    }

    // ---------- timeline ----------

    const ms = (s) => (s && !s.startsWith("0001") ? Date.parse(s) : NaN);
    let tlRows = new Map();
    // timeline draws the nodes that are in view, sorted by when they were
    // dispatched, on one time axis from the first dispatch to the last
    // report (or now, while the run goes on).
    function timeline() {
      const order = [...st.nodes.values()].filter((n) => !isNaN(ms(n.started)));
      order.sort((a, b) => ms(a.started) - ms(b.started) || cmpKey(idKey(a.id), idKey(b.id)));
      let t0 = Infinity, t1 = -Infinity;
      const live = st.run && !FINAL.has(st.run.status) && st.run.status !== "interrupted";
      for (const n of order) {
        t0 = Math.min(t0, ms(n.started));
        const e = ms(n.ended);
        t1 = Math.max(t1, isNaN(e) ? (live ? Date.now() : ms(n.started)) : e);
      }
      if (live) t1 = Math.max(t1, Date.now());
      const span = Math.max(1, t1 - t0);
      axis(span);
      tlSpacer.style.height = order.length * ROW_H + "px";
      const top = tlBody.scrollTop, h = tlBody.clientHeight || 600;
      const first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
      const last = Math.min(order.length, Math.ceil((top + h) / ROW_H) + OVERSCAN);
      const keep = new Map();
      for (let i = first; i < last; i++) {
        const n = order[i];
        let row = tlRows.get(n.id);
        if (!row) { row = tlRow(); tlBody.appendChild(row); }
        row.style.top = i * ROW_H + "px";
        fillTl(row, n, t0, span, live);
        keep.set(n.id, row);
      }
      for (const [id, row] of tlRows) if (!keep.has(id)) row.remove();
      tlRows = keep;
    }
    function axis(span) {
      // About eight ticks at 1, 2 or 5 times a power of ten.
      const raw = span / 8, p = Math.pow(10, Math.floor(Math.log10(raw)));
      const step = [1, 2, 5, 10].map((m) => m * p).find((x) => x >= raw);
      const key = span + ":" + step;
      if (tlAxis._key === key) return;
      tlAxis._key = key;
      clear(tlAxis);
      tlAxis.appendChild(el("span", { class: "tl-name muted", text: "node" }));
      const track = el("span", { class: "tl-track" });
      for (let t = 0; t <= span; t += step) {
        const tick = el("span", { class: "tl-tick", text: t < 1000 ? t + "ms" : (t / 1000) + "s" });
        tick.style.left = (100 * t / span).toFixed(2) + "%";
        track.appendChild(tick);
      }
      tlAxis.appendChild(track);
    }
    function tlRow() {
      const r = el("div", { class: "row tl-row" });
      const c = r._c = {
        name: el("span", { class: "tl-name" }),
        track: el("span", { class: "tl-track" }),
        bar: el("span", { class: "tl-bar" }),
        wait: el("span", { class: "tl-wait" }),
        cache: el("span", { class: "tl-cache" }),
        marks: el("span", { class: "tl-marks" }),
      };
      c.bar.append(c.wait, c.cache);
      c.track.append(c.bar, c.marks);
      r.append(c.name, c.track);
      r.addEventListener("click", () => select(r._id));
      return r;
    }
    function fillTl(r, n, t0, span, live) {
      const c = r._c;
      r._id = n.id;
      r.dataset.id = n.id;
      r.className = "row tl-row st-" + n.status + (n.id === st.selected ? " sel" : "");
      c.name.textContent = n.id + "  " + (n.name || "");
      const a = ms(n.started), e0 = ms(n.ended);
      const e = isNaN(e0) ? (live ? Date.now() : a) : e0;
      const dur = Math.max(0, e - a);
      const left = 100 * (a - t0) / span, width = Math.max(0.3, 100 * dur / span);
      c.bar.style.left = left.toFixed(3) + "%";
      c.bar.style.width = width.toFixed(3) + "%";
      c.marks.style.left = "calc(" + (left + width).toFixed(3) + "% + 4px)";
      // The time the node's calls waited for rate limits, drawn from the
      // start of its bar (a share of the bar, not where in it they waited).
      const wait = Math.min(dur, n.wait_ms || 0);
      c.wait.style.width = dur > 0 ? (100 * wait / dur).toFixed(1) + "%" : "0";
      // Shaded by the share of its prompt tokens read from a cache.
      const u = n.usage || {};
      const input = (u.input_tokens || 0) + (u.cache_read_tokens || 0) + (u.cache_write_tokens || 0);
      const hit = input > 0 ? (u.cache_read_tokens || 0) / input : 0;
      c.cache.style.opacity = hit.toFixed(2);
      c.cache.hidden = hit === 0;
      clear(c.marks);
      const marks = [];
      // Glyphs that DejaVu, the fonts a Debian machine has, can draw.
      if (n.retries) marks.push(el("span", { class: "tl-mark retry", title: "calls sent again", text: "↻" + n.retries }));
      if (n.batch_calls) marks.push(el("span", { class: "tl-mark batch", title: "calls sent as a batch", text: "▤" + n.batch_calls }));
      if (n.hedges) marks.push(el("span", { class: "tl-mark hedge", title: "calls hedged (" + (n.hedge_wins || 0) + " won)", text: "⇉" + n.hedges }));
      if (n.attempt) marks.push(el("span", { class: "tl-mark fix", title: "repairs", text: "✎" + n.attempt }));
      if (n.status === "escalated") marks.push(el("span", { class: "tl-mark up", title: "escalated to a stronger tier", text: "↑" }));
      add(c.marks, marks);
      const facts = [n.id + " " + (n.name || ""), n.status, (dur / 1000).toFixed(1) + "s", n.model || ""];
      if (wait) facts.push("waited " + (wait / 1000).toFixed(1) + "s for rate limits");
      if (n.retries) facts.push(n.retries + (n.retries === 1 ? " retry" : " retries"));
      if (n.hedges) facts.push(n.hedges + " hedged");
      if (n.batch_calls) facts.push(n.batch_calls + " by batch");
      if (hit) facts.push("cache " + Math.round(100 * hit) + "% read");
      facts.push(usd(nanosUSD(n.cost_nanos)));
      r.title = facts.join(" · ");
    }

    // ---------- node panel ----------

    let panelSeq = 0, refreshTimer = 0;
    function select(id) {
      const prev = st.selected;
      st.selected = id;
      if (prev) st.dirty.add(prev);
      st.dirty.add(id);
      schedule();
      setHash();
      loadPanel(id);
    }
    function panelRefresh() {
      if (refreshTimer) return;
      refreshTimer = setTimeout(() => { refreshTimer = 0; if (st.selected) loadPanel(st.selected, true); }, 700);
    }
    async function loadPanel(id, quiet) {
      const my = ++panelSeq;
      if (!quiet) { clear(panel); panel.appendChild(el("p", { class: "muted", text: "Loading " + id + "…" })); }
      let data;
      try {
        data = await api("GET", "/v1/runs/" + seg(runID) + "/nodes/" + seg(id));
      } catch (e) {
        if (my !== panelSeq) return;
        clear(panel);
        panel.appendChild(el("p", { class: "error", text: "Could not load node " + id + ": " + e.message }));
        return;
      }
      if (my !== panelSeq) return;
      const scroll = panel.scrollTop;
      clear(panel);
      renderPanel(panel, data);
      if (quiet) panel.scrollTop = scroll;
    }

    function renderPanel(p, data) {
      const n = data.node || {};
      const u = n.usage || {};
      p.appendChild(el("div", { class: "node-title" },
        statusBadge(n.status), el("h3", { text: n.id + " · " + (n.name || n.role || "") })));
      p.appendChild(el("dl", { class: "facts" },
        fact("role", n.role), fact("model", n.model + (n.tier != null ? " (tier " + n.tier + ")" : "")),
        fact("parent", n.parent), fact("tokens", "in " + (u.input_tokens || 0) + " · out " + (u.output_tokens || 0) +
          (u.cache_read_tokens ? " · cache read " + u.cache_read_tokens : "") + (u.cache_write_tokens ? " · cache write " + u.cache_write_tokens : "")),
        fact("cost", usd(nanosUSD(n.cost_nanos)) + " in " + (n.calls || 0) + " calls" + (n.cache_saved_nanos ? " · caching saved " + usd(nanosUSD(n.cache_saved_nanos)) : "")),
        fact("batch", n.batch_calls ? n.batch_calls + " of " + (n.calls || 0) + " calls sent as a batch, at the batch price" : ""),
        fact("hedges", n.hedges ? n.hedges + " sent · " + (n.hedge_wins || 0) + " answered first · " + usd(nanosUSD(n.hedge_cost_nanos)) + " for the copies not taken" : ""),
        fact("rate limits", n.wait_ms || n.retries ? "waited " + ((n.wait_ms || 0) / 1000).toFixed(1) + "s · " + (n.retries || 0) + " retries" : ""),
        fact("repairs", String(n.attempt || 0)), fact("time", duration(n))));
      if (n.verdict && n.verdict.outcome) {
        p.appendChild(el("section", { class: "verdict-box v-" + n.verdict.outcome },
          el("h4", null, "Verdict ", verdictBadge(n.verdict), n.verdict.verifier ? el("span", { class: "muted", text: " by " + n.verdict.verifier }) : null),
          n.verdict.evidence ? el("pre", { class: "evidence", text: n.verdict.evidence }) : null));
      }
      if (n.error) p.appendChild(el("section", null, el("h4", { text: "Error" }), el("pre", { class: "error-text", text: n.error })));
      if (n.report) p.appendChild(el("section", { class: "report" }, el("h4", { text: "Report" }), markdown(n.report)));

      const arts = data.artifacts || [];
      if (arts.length) {
        const view = el("div", { class: "artifact-view" });
        p.appendChild(el("section", { class: "artifacts" }, el("h4", { text: "Artifacts" }),
          el("ul", null, arts.map((a) => el("li", null,
            el("button", { class: "link", onclick: () => showArtifact(view, a) , text: a.name || a.id }),
            el("span", { class: "muted", text: " " + a.id + " · " + (a.size || 0) + " bytes" })))),
          view));
      }
      const msgs = data.messages || [];
      const conv = el("section", { class: "conversation" }, el("h4", { text: "Conversation" }));
      if (!msgs.length) conv.appendChild(el("p", { class: "muted", text: "No conversation journaled yet." }));
      for (const m of msgs) conv.appendChild(message(m));
      p.appendChild(conv);
      if (data.code_runs && data.code_runs.length) {
        p.appendChild(el("section", null, el("h4", { text: "Code runs" }),
          data.code_runs.map((r) => el("pre", { class: "code", text: JSON.stringify(r, null, 2) }))));
      }
    }
    function fact(k, v) { return v ? [el("dt", { text: k }), el("dd", { text: v })] : null; }

    async function showArtifact(box, a) {
      clear(box);
      box.appendChild(el("p", { class: "muted", text: "Loading " + a.id + "…" }));
      try {
        const d = await api("GET", "/v1/runs/" + seg(runID) + "/artifacts/" + seg(a.id));
        clear(box);
        box.appendChild(el("h5", { text: d.name || a.id }));
        const name = d.name || a.id;
        if (/\.(md|markdown)$/i.test(name) || /report$/.test(name)) box.appendChild(markdown(d.content || ""));
        else if (name === "patch") box.appendChild(diffBlock(d.content || ""));
        else box.appendChild(codeBlock(d.content || "", langOf(name)));
      } catch (e) {
        clear(box);
        box.appendChild(el("p", { class: "error", text: "Could not load artifact: " + e.message }));
      }
    }

    // ---------- stream ----------

    let es = null;
    function stream() {
      if (es) es.close();
      es = new EventSource("/v1/runs/" + seg(runID) + "/events");
      es.onopen = () => { conn.textContent = "live"; conn.className = "conn live"; };
      es.onerror = () => {
        if (es && es.readyState === EventSource.CLOSED) { conn.textContent = "disconnected"; conn.className = "conn off"; }
        else { conn.textContent = "reconnecting…"; conn.className = "conn off"; }
      };
      const on = (ev) => {
        let e;
        try { e = JSON.parse(ev.data); } catch (_) { return; }
        if (e.node) putNode(e.node);
        if (e.cost_nanos != null && e.cost_nanos > st.costNanos) st.costNanos = e.cost_nanos;
        if (st.run) {
          if (e.type === "run_started" || e.type === "run_resumed") st.run.status = "running";
          if (e.type === "run_finished" && e.status) st.run.status = e.status;
          if (e.type === "run_finished") {
            if (e.status === "done" && e.text) st.run.answer = e.text;
            else if (e.text) st.run.error = e.text;
          }
          setRun(st.run);
        }
        if (e.type === "approval") loadApprovals();
        if (e.type === "run_finished") {
          es.close();
          conn.textContent = "finished";
          conn.className = "conn";
          reload();
        }
        schedule();
      };
      for (const t of ["run_started", "run_resumed", "run_finished", "node", "usage", "artifact", "verdict", "budget", "approval"]) es.addEventListener(t, on);
      es.onmessage = on;
    }

    async function reload() {
      try {
        const data = await api("GET", "/v1/runs/" + seg(runID));
        setRun(data.run || {});
        for (const n of data.nodes || []) putNode(n);
        schedule();
        return true;
      } catch (e) {
        showErr(e);
        return false;
      }
    }

    if (openView !== "tree") setView(openView);
    (async () => {
      if (await reload()) {
        if (!FINAL.has(st.run.status) && st.run.status !== "interrupted") { stream(); loadApprovals(); }
        else { conn.textContent = st.run.status; conn.className = "conn"; }
      }
      if (openNode) loadPanel(openNode);
    })();

    return {
      stop() {
        if (es) es.close();
        es = null;
        if (st.frame) cancelAnimationFrame(st.frame);
        clearTimeout(refreshTimer);
        clearInterval(tlTimer);
        window.removeEventListener("resize", schedule);
      },
    };
  }

  // ---------- conversation ----------

  function message(m) {
    const box = el("div", { class: "msg role-" + m.role }, el("div", { class: "msg-role", text: m.role }));
    for (const p of m.parts || []) box.appendChild(part(p));
    return box;
  }
  function part(p) {
    switch (p.type) {
      case "text":
        return el("div", { class: "part text" }, markdown(p.text || ""));
      case "tool_call":
        return toolCall(p);
      case "tool_result":
        return el("div", { class: "part result" + (p.is_error ? " is-error" : "") },
          el("div", { class: "part-head", text: "tool result" + (p.is_error ? " (error)" : "") + (p.id ? " · " + p.id : "") }),
          el("pre", { class: "plain", text: p.text || "" }));
      case "image":
        return el("div", { class: "part", text: "[image] " + (p.text || "") });
      default:
        return el("div", { class: "part", text: JSON.stringify(p) });
    }
  }
  // toolCall shows a call's arguments; code in them (run_code's code,
  // submit's artifacts) is shown highlighted, a report as markdown.
  function toolCall(p) {
    let args = p.input;
    if (typeof args === "string") { try { args = JSON.parse(args); } catch (_) { /* keep the string */ } }
    const box = el("div", { class: "part call" }, el("div", { class: "part-head", text: "tool call · " + (p.name || "?") + (p.id ? " · " + p.id : "") }));
    if (!args || typeof args !== "object") {
      box.appendChild(el("pre", { class: "plain", text: typeof args === "string" ? args : JSON.stringify(args) }));
      return box;
    }
    const rest = Object.assign({}, args);
    if (typeof args.code === "string") {
      box.appendChild(codeBlock(args.code, args.language || "python"));
      delete rest.code;
    }
    if (typeof args.report === "string") {
      box.appendChild(el("div", { class: "report" }, markdown(args.report)));
      delete rest.report;
    }
    if (typeof args.answer === "string") {
      box.appendChild(el("div", { class: "report" }, markdown(args.answer)));
      delete rest.answer;
    }
    if (args.artifacts && typeof args.artifacts === "object" && !Array.isArray(args.artifacts)) {
      for (const k of Object.keys(args.artifacts)) {
        const v = args.artifacts[k];
        box.appendChild(el("div", { class: "art-name", text: "artifact " + k }));
        box.appendChild(typeof v === "string" ? codeBlock(v, langOf(k, v)) : el("pre", { class: "plain", text: JSON.stringify(v, null, 2) }));
      }
      delete rest.artifacts;
    }
    if (Array.isArray(args.tasks)) {
      box.appendChild(el("ol", { class: "tasks" }, args.tasks.map((t) => el("li", null,
        el("b", { text: t.name || "" }), " ", t.instructions || "",
        t.verify ? el("span", { class: "muted", text: " · verify " + (t.verify.kind || "") }) : null,
        t.verify && t.verify.code ? codeBlock(t.verify.code, "python") : null))));
      delete rest.tasks;
    }
    if (Object.keys(rest).length) box.appendChild(el("pre", { class: "plain", text: JSON.stringify(rest, null, 2) }));
    return box;
  }
  function langOf(name, content) {
    const m = /\.([a-z0-9]+)$/i.exec(name || "");
    if (m) return m[1].toLowerCase();
    if (content && /^\s*(def |import |from |class )/m.test(content)) return "python";
    return "";
  }

  // ---------- code highlighting ----------

  const KEYWORDS = new Set((
    "def class return if elif else for while in not and or is None True False import from as with try except finally raise lambda yield pass break continue global nonlocal assert del async await " +
    "function const let var new this typeof instanceof null undefined true false switch case default do throw catch export extends static of void delete " +
    "func package type struct interface map chan go defer select range nil fallthrough goto " +
    "fn pub use mod impl trait enum match mut loop where self Self " +
    "echo fi then done esac local"
  ).split(" "));
  const HASH_COMMENT = new Set(["python", "py", "sh", "bash", "shell", "ruby", "rb", "toml", "yaml", "yml", "r", ""]);
  const SLASH_COMMENT = new Set(["js", "javascript", "ts", "typescript", "go", "c", "cpp", "java", "rust", "rs", "json", "css", "swift", "kotlin", ""]);

  // highlight returns a <code> of spans; every piece of source is a text node.
  function highlight(src, lang) {
    lang = (lang || "").toLowerCase();
    const code = el("code");
    const hashC = HASH_COMMENT.has(lang), slashC = SLASH_COMMENT.has(lang);
    let i = 0, plain = "";
    const flushPlain = () => { if (plain) { code.appendChild(document.createTextNode(plain)); plain = ""; } };
    const span = (cls, text) => { flushPlain(); code.appendChild(el("span", { class: "tok-" + cls, text })); };
    const n = src.length;
    while (i < n) {
      const c = src[i];
      const rest2 = src.substr(i, 2);
      if ((hashC && c === "#") || (slashC && rest2 === "//")) {
        let j = src.indexOf("\n", i); if (j < 0) j = n;
        span("com", src.slice(i, j)); i = j; continue;
      }
      if (slashC && rest2 === "/*") {
        let j = src.indexOf("*/", i + 2); j = j < 0 ? n : j + 2;
        span("com", src.slice(i, j)); i = j; continue;
      }
      if (c === '"' || c === "'" || c === "`") {
        const triple = src.substr(i, 3) === c + c + c;
        let j = i + (triple ? 3 : 1);
        while (j < n) {
          if (src[j] === "\\") { j += 2; continue; }
          if (triple ? src.substr(j, 3) === c + c + c : src[j] === c) { j += triple ? 3 : 1; break; }
          if (!triple && c !== "`" && src[j] === "\n") break;
          j++;
        }
        span("str", src.slice(i, Math.min(j, n))); i = Math.min(j, n); continue;
      }
      if (/[0-9]/.test(c) && !/[A-Za-z0-9_]/.test(src[i - 1] || "")) {
        const m = /^(0x[0-9a-fA-F_]+|[0-9][0-9_]*(\.[0-9_]+)?([eE][+-]?[0-9]+)?)/.exec(src.slice(i, i + 64));
        span("num", m[0]); i += m[0].length; continue;
      }
      if (/[A-Za-z_]/.test(c)) {
        const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i, i + 256));
        const w = m[0];
        if (KEYWORDS.has(w)) span("kw", w); else plain += w;
        i += w.length; continue;
      }
      plain += c; i++;
    }
    flushPlain();
    return code;
  }
  // diffBlock shows a unified diff (a worker's patch, the run's): a line
  // a span, coloured by what it is; the text stays text.
  function diffBlock(src) {
    const pre = el("pre", { class: "diff" });
    for (const line of String(src).replace(/\n$/, "").split("\n")) {
      let cls = "diff-ctx";
      if (/^(diff --git|index |--- |\+\+\+ |new file mode|deleted file mode)/.test(line)) cls = "diff-file";
      else if (line.startsWith("@@")) cls = "diff-hunk";
      else if (line.startsWith("+")) cls = "diff-add";
      else if (line.startsWith("-")) cls = "diff-del";
      pre.appendChild(el("span", { class: cls, text: line + "\n" }));
    }
    return pre;
  }

  function codeBlock(src, lang) {
    const pre = el("pre", { class: "code" + (lang ? " lang-" + lang.replace(/[^a-z0-9]/gi, "") : "") }, highlight(src, lang));
    return pre;
  }

  // ---------- markdown ----------

  // markdown renders a safe subset as DOM: headings, paragraphs, lists,
  // block quotes, fenced code, inline code, emphasis and http(s) links.
  function markdown(src) {
    const root = el("div", { class: "md" });
    const lines = String(src).replace(/\r\n?/g, "\n").split("\n");
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      let m;
      if ((m = /^\s*(```+|~~~+)\s*([\w+-]*)/.exec(line))) {
        const fence = m[1], lang = m[2];
        const body = [];
        i++;
        while (i < lines.length && !lines[i].trim().startsWith(fence)) body.push(lines[i++]);
        i++;
        root.appendChild(codeBlock(body.join("\n"), lang));
        continue;
      }
      if (!line.trim()) { i++; continue; }
      if ((m = /^(#{1,6})\s+(.*)$/.exec(line))) {
        root.appendChild(inline(el("h" + Math.min(6, m[1].length + 3)), m[2]));
        i++; continue;
      }
      if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) { root.appendChild(el("hr")); i++; continue; }
      if (/^\s*>/.test(line)) {
        const body = [];
        while (i < lines.length && /^\s*>/.test(lines[i])) body.push(lines[i++].replace(/^\s*>\s?/, ""));
        root.appendChild(el("blockquote", null, markdown(body.join("\n"))));
        continue;
      }
      if ((m = /^\s*([-*+]|\d+[.)])\s+/.exec(line))) {
        const ordered = /\d/.test(m[1]);
        const list = el(ordered ? "ol" : "ul");
        while (i < lines.length) {
          const lm = /^\s*([-*+]|\d+[.)])\s+(.*)$/.exec(lines[i]);
          if (!lm || /\d/.test(lm[1]) !== ordered) break;
          let text = lm[2];
          i++;
          while (i < lines.length && /^\s{2,}\S/.test(lines[i]) && !/^\s*([-*+]|\d+[.)])\s+/.test(lines[i])) text += " " + lines[i++].trim();
          list.appendChild(inline(el("li"), text));
        }
        root.appendChild(list);
        continue;
      }
      const para = [];
      while (i < lines.length && lines[i].trim() && !/^\s*(```|~~~|#{1,6}\s|>|[-*+]\s|\d+[.)]\s)/.test(lines[i])) para.push(lines[i++]);
      if (!para.length) para.push(lines[i++]);
      root.appendChild(inline(el("p"), para.join("\n")));
    }
    return root;
  }
  // inline appends text with `code`, **strong**, *em*/_em_ and [links](http…).
  function inline(parent, text) {
    // Underscores emphasise only between spaces ("snake_case", "a.__b__" stay text).
    const re = /`([^`]+)`|\*\*([^*\s](?:[^*]*[^*\s])?)\*\*|(?<=^|[\s(])__([^_\s](?:[^_]*[^_\s])?)__(?=$|[\s.,;:!?)])|\*([^*\s](?:[^*]*[^*\s])?)\*|(?<=^|[\s(])_([^_\s](?:[^_]*[^_\s])?)_(?=$|[\s.,;:!?)])|\[([^\]]+)\]\(([^)\s]+)\)/g;
    let last = 0, m;
    while ((m = re.exec(text))) {
      if (m.index > last) parent.appendChild(document.createTextNode(text.slice(last, m.index)));
      if (m[1] != null) parent.appendChild(el("code", { class: "inline", text: m[1] }));
      else if (m[2] != null || m[3] != null) parent.appendChild(el("strong", { text: m[2] != null ? m[2] : m[3] }));
      else if (m[4] != null || m[5] != null) parent.appendChild(el("em", { text: m[4] != null ? m[4] : m[5] }));
      else if (m[6] != null) {
        let url = null;
        try { const u = new URL(m[7]); if (u.protocol === "http:" || u.protocol === "https:") url = u.href; } catch (_) { /* not a URL */ }
        if (url) parent.appendChild(el("a", { href: url, rel: "noreferrer noopener", target: "_blank", text: m[6] }));
        else parent.appendChild(document.createTextNode(m[0]));
      }
      last = re.lastIndex;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
    return parent;
  }

  // Exposed for tests and debugging; pure functions only.
  window.hive = { markdown, highlight, idKey, cmpKey };
})();
