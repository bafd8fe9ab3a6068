// headroom dashboard: fetches /dashboard/data.json and draws every chart itself as inline SVG.
// No libraries and no external URLs: the page must work offline and under a strict CSP, so the DOM is
// built with createElement/textContent only (project paths and lesson texts are never parsed as HTML).
"use strict";

(function () {
  var SVG_NS = "http:" + "//www.w3.org/2000/svg"; // the SVG namespace is a name, not a URL that is fetched
  var PALETTE = ["#2f6fdf", "#e07b24", "#2e9e5b", "#9b59b6", "#c8372d", "#17a2b8", "#8a6d3b", "#6c757d"];
  var MAX_PROJECT_BARS = 20;

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    setAttrs(node, attrs);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function svgEl(tag, attrs, text) {
    var node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function setAttrs(node, attrs) {
    if (!attrs) return;
    Object.keys(attrs).forEach(function (k) {
      if (attrs[k] !== undefined && attrs[k] !== null) node.setAttribute(k, String(attrs[k]));
    });
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }

  function fmtInt(n) { return Math.round(n || 0).toLocaleString("en-US"); }

  function fmtTokens(n) {
    var a = Math.abs(n || 0);
    if (a >= 1e9) return (n / 1e9).toFixed(1) + "B";
    if (a >= 1e6) return (n / 1e6).toFixed(1) + "M";
    if (a >= 1e3) return (n / 1e3).toFixed(1) + "k";
    return String(Math.round(n || 0));
  }

  function fmtUSD(x) {
    x = x || 0;
    return "$" + (Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 1 ? x.toFixed(2) : x.toFixed(3));
  }

  function fmtBytes(n) {
    if (n === null || n === undefined) return "unknown";
    var units = ["B", "KB", "MB", "GB", "TB"], i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return (i ? n.toFixed(1) : String(n)) + " " + units[i];
  }

  function pct(r) { return (100 * (r || 0)).toFixed(1) + "%"; }

  function shortPath(p) {
    var parts = String(p).split("/").filter(Boolean);
    return parts.length > 2 ? "…/" + parts.slice(-2).join("/") : String(p);
  }

  function empty(container, message) {
    clear(container).appendChild(el("p", { "class": "empty" }, message));
  }

  function table(headers, rows) {
    var t = el("table"), head = el("tr");
    headers.forEach(function (h) { head.appendChild(el("th", { "class": h.num ? "num" : null }, h.label)); });
    t.appendChild(el("thead")).appendChild(head);
    var body = t.appendChild(el("tbody"));
    rows.forEach(function (cells) {
      var tr = body.appendChild(el("tr"));
      cells.forEach(function (cell, i) {
        var td = tr.appendChild(el("td", { "class": headers[i].num ? "num" : headers[i].cls || null }));
        if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell === null || cell === undefined ? "–" : String(cell);
      });
    });
    return t;
  }

  function niceMax(v) {
    if (v <= 0) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(v))), m = v / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }

  function legend(names, colors) {
    var box = el("div", { "class": "legend" });
    names.forEach(function (name) {
      var item = box.appendChild(el("span"));
      var sw = item.appendChild(svgEl("svg", { width: 10, height: 10, "class": "swatch", "aria-hidden": "true" }));
      sw.appendChild(svgEl("rect", { width: 10, height: 10, rx: 2, fill: colors[name] }));
      item.appendChild(document.createTextNode(name));
    });
    return box;
  }

  // -- charts ------------------------------------------------------------------------------------------

  function savingsChart(container, savings) {
    var agents = savings.agents, days = savings.days;
    var totals = days.map(function (d) {
      return agents.reduce(function (s, a) { return s + Math.max(0, (d.agents[a] || {}).tokens_saved || 0); }, 0);
    });
    if (!agents.length || !totals.some(function (t) { return t > 0; })) {
      empty(container, "No data yet: no tokens saved by the proxy in this period. Point an agent at the proxy with `headroom wrap`.");
      return;
    }
    var colors = {};
    agents.forEach(function (a, i) { colors[a] = PALETTE[i % PALETTE.length]; });
    var W = 1100, H = 280, m = { top: 12, right: 12, bottom: 34, left: 58 };
    var iw = W - m.left - m.right, ih = H - m.top - m.bottom;
    var max = niceMax(Math.max.apply(null, totals));
    var band = iw / days.length, bw = Math.max(1, band * 0.72);
    var svg = svgEl("svg", { viewBox: "0 0 " + W + " " + H, role: "img", id: "savings-svg",
      "aria-label": "tokens saved per day, stacked by agent" });
    for (var t = 0; t <= 4; t += 1) {
      var v = max * t / 4, y = m.top + ih - ih * t / 4;
      svg.appendChild(svgEl("line", { x1: m.left, x2: W - m.right, y1: y, y2: y, "class": "axis" }));
      svg.appendChild(svgEl("text", { x: m.left - 6, y: y + 4, "text-anchor": "end" }, fmtTokens(v)));
    }
    var every = Math.max(1, Math.ceil(days.length / 12));
    days.forEach(function (d, i) {
      var x = m.left + i * band + (band - bw) / 2, base = m.top + ih;
      agents.forEach(function (a) {
        var f = d.agents[a];
        var saved = f ? Math.max(0, f.tokens_saved) : 0;
        if (!saved) return;
        var h = ih * saved / max;
        base -= h;
        var r = svg.appendChild(svgEl("rect", { x: x.toFixed(2), y: base.toFixed(2), width: bw.toFixed(2),
          height: Math.max(0.5, h).toFixed(2), fill: colors[a], "class": "bar saved", "data-day": d.day, "data-agent": a }));
        r.appendChild(svgEl("title", null, d.day + " · " + a + ": " + fmtInt(saved) + " tokens saved (" +
          fmtUSD(f.usd_estimate) + " estimate, " + f.requests + " requests)"));
      });
      if (i % every === 0) {
        svg.appendChild(svgEl("text", { x: m.left + i * band + band / 2, y: H - m.bottom + 16, "text-anchor": "middle" },
          d.day.slice(5)));
      }
    });
    clear(container).appendChild(legend(agents, colors));
    container.appendChild(svg);
  }

  function hbarChart(container, rows, opts) {
    var W = 1100, rowH = 24, labelW = 300, valueW = 170, m = { top: 6, bottom: 6 };
    var iw = W - labelW - valueW - 10, H = m.top + m.bottom + rows.length * rowH;
    var max = opts.max || niceMax(Math.max.apply(null, rows.map(function (r) { return r.value; }).concat([0])));
    var svg = svgEl("svg", { viewBox: "0 0 " + W + " " + H, role: "img", id: opts.id, "aria-label": opts.label });
    rows.forEach(function (r, i) {
      var y = m.top + i * rowH;
      var label = svg.appendChild(svgEl("text", { x: labelW - 8, y: y + rowH / 2 + 4, "text-anchor": "end" }, r.label));
      label.appendChild(svgEl("title", null, r.title || r.label));
      svg.appendChild(svgEl("rect", { x: labelW, y: y + 4, width: iw, height: rowH - 8, "class": "track" }));
      var w = max > 0 ? iw * Math.min(1, r.value / max) : 0;
      var bar = svg.appendChild(svgEl("rect", { x: labelW, y: y + 4, width: w.toFixed(2), height: rowH - 8,
        "class": "bar " + opts.cls, fill: opts.fill || null }));
      bar.appendChild(svgEl("title", null, r.title || r.label));
      svg.appendChild(svgEl("text", { x: labelW + iw + 8, y: y + rowH / 2 + 4, "class": "value-label" }, r.text));
    });
    clear(container).appendChild(svg);
  }

  // -- sections ----------------------------------------------------------------------------------------

  function cards(data) {
    var s = data.savings.total, sessions = data.projects.reduce(function (n, p) { return n + p.sessions; }, 0);
    var items = [
      [fmtTokens(s.tokens_saved), "tokens saved (" + pct(s.saved_ratio) + ")"],
      [fmtUSD(s.usd_estimate), "saved, estimate"],
      [fmtInt(s.requests), "proxied requests"],
      [fmtInt(sessions), "agent sessions"],
      [fmtInt((data.lessons.by_status || {}).active || 0), "active lessons"],
      [fmtInt(data.memory.items), "memory items"],
    ];
    var box = clear($("cards"));
    items.forEach(function (it) {
      var c = box.appendChild(el("div", { "class": "card" }));
      c.appendChild(el("div", { "class": "value" }, it[0]));
      c.appendChild(el("div", { "class": "label" }, it[1]));
    });
  }

  function savingsSection(data) {
    var s = data.savings;
    savingsChart($("savings-chart"), s);
    $("price-note").textContent = "$ figures: " + data.prices.note + ".";
    var box = clear($("savings-table"));
    if (!s.agents.length) return;
    box.appendChild(table(
      [{ label: "agent" }, { label: "requests", num: 1 }, { label: "tokens before", num: 1 },
       { label: "tokens after", num: 1 }, { label: "saved", num: 1 }, { label: "saved %", num: 1 },
       { label: "$ estimate", num: 1 }],
      s.agents.map(function (a) {
        var f = s.by_agent[a];
        return [a, fmtInt(f.requests), fmtInt(f.tokens_before), fmtInt(f.tokens_after), fmtInt(f.tokens_saved),
          pct(f.saved_ratio), fmtUSD(f.usd_estimate)];
      })));
  }

  function projectsSection(data) {
    var rows = data.projects;
    if (!rows.length) {
      empty($("projects-chart"), "No data yet: no agent sessions in this period.");
      clear($("projects-table"));
      return;
    }
    hbarChart($("projects-chart"), rows.slice(0, MAX_PROJECT_BARS).map(function (p) {
      return { label: p.name || shortPath(p.project), title: p.project + ": " + p.failed_tool_calls + " of " + p.tool_calls +
        " tool calls failed", value: p.failure_rate,
        text: pct(p.failure_rate) + " of " + fmtInt(p.tool_calls) + " calls" };
    }), { id: "projects-svg", cls: "failure", label: "tool-call failure rate per project" });
    $("projects-table").appendChild(table(
      [{ label: "project", cls: "path" }, { label: "sessions", num: 1 }, { label: "failed sessions", num: 1 },
       { label: "tool calls", num: 1 }, { label: "failed calls", num: 1 }, { label: "failure rate", num: 1 },
       { label: "API errors", num: 1 }, { label: "tokens", num: 1 }],
      rows.map(function (p) {
        return [p.project, fmtInt(p.sessions), fmtInt(p.failed_sessions) + " (" + pct(p.session_failure_rate) + ")",
          fmtInt(p.tool_calls), fmtInt(p.failed_tool_calls), pct(p.failure_rate), fmtInt(p.api_errors),
          fmtTokens(p.total_tokens)];
      })));
  }

  function teamSection(data) {
    var t = data.team, panel = $("team-panel");
    if (!t) { panel.hidden = true; return; }
    panel.hidden = false;
    [["users", "user"], ["machines", "machine"]].forEach(function (pair) {
      var box = clear($("team-" + pair[0]));
      box.appendChild(table(
        [{ label: pair[1] }, { label: "sessions", num: 1 }, { label: "tool calls", num: 1 },
         { label: "failed calls", num: 1 }, { label: "failure rate", num: 1 }, { label: "tokens", num: 1 }],
        t[pair[0]].map(function (r) {
          return [r.name, fmtInt(r.sessions), fmtInt(r.tool_calls), fmtInt(r.failed_tool_calls), pct(r.failure_rate),
            fmtTokens(r.total_tokens)];
        })));
    });
  }

  function lessonsSection(data) {
    var l = data.lessons, box = clear($("lessons"));
    if (!l.items.length) { empty(box, "No lessons yet: they are mined from failed sessions."); return; }
    var counts = Object.keys(l.by_status).map(function (k) { return l.by_status[k] + " " + k; }).join(" · ");
    box.appendChild(el("p", { "class": "muted" }, l.total + " lessons: " + counts));
    box.appendChild(table(
      [{ label: "status" }, { label: "lesson" }, { label: "project", cls: "path" }, { label: "seen in", num: 1 },
       { label: "before", num: 1 }, { label: "after", num: 1 }],
      l.items.map(function (it) {
        var status = el("span", { "class": "status " + it.status }, it.status);
        if (it.retired_reason) status.setAttribute("title", it.retired_reason);
        return [status, it.text, it.project, fmtInt(it.sessions) + " sessions", it.before, it.after];
      })));
  }

  function memorySection(data) {
    var mem = data.memory, kinds = Object.keys(mem.by_kind || {});
    var box = clear($("memory"));
    box.appendChild(el("p", null, fmtInt(mem.items) + " items · " + fmtInt(mem.chars) + " characters · " +
      fmtInt(mem.projects) + " projects · database " + fmtBytes(mem.db_bytes)));
    if (!kinds.length) { empty($("memory-chart"), "No data yet: the shared memory is empty."); return; }
    hbarChart($("memory-chart"), kinds.map(function (k) {
      return { label: k, value: mem.by_kind[k], text: fmtInt(mem.by_kind[k]) + " items" };
    }), { id: "memory-svg", cls: "memory", fill: PALETTE[0], label: "memory items by kind" });
  }

  function render(data) {
    $("window").textContent = data.since + " – " + data.until + " (UTC), " + data.days + " days";
    cards(data);
    savingsSection(data);
    projectsSection(data);
    teamSection(data);
    lessonsSection(data);
    memorySection(data);
  }

  function fail(message) {
    var banner = $("error");
    banner.textContent = message;
    banner.hidden = false;
    document.body.setAttribute("data-state", "error");
  }

  function start() {
    var days = new URLSearchParams(window.location.search).get("days") || "30";
    Array.prototype.forEach.call(document.querySelectorAll("#range a"), function (a) {
      if (a.getAttribute("data-days") === days) a.classList.add("current");
    });
    fetch("/dashboard/data.json?days=" + encodeURIComponent(days), { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        return r.json().then(function (body) {
          if (!r.ok) throw new Error(body.error || "HTTP " + r.status);
          return body;
        });
      })
      .then(function (data) {
        render(data);
        document.body.setAttribute("data-state", "ready");
      })
      .catch(function (err) { fail("Could not load the dashboard's data: " + err.message); });
  }

  document.addEventListener("DOMContentLoaded", start);
})();
