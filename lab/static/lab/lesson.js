// The lesson page: run a variant, measure every variant on the server, draw the result.
// No dependencies: the chart is inline SVG built here.
"use strict";
(function () {
  const config = JSON.parse(document.getElementById("lesson-config").textContent);
  const SVG = "http://www.w3.org/2000/svg";
  const METRICS = [
    ["queries", "Queries", (v) => v.toFixed(0)],
    ["db_ms", "DB time (ms)", (v) => v.toFixed(1)],
    ["total_ms", "Total time (ms)", (v) => v.toFixed(1)],
  ];

  function svg(name, attributes, text) {
    const element = document.createElementNS(SVG, name);
    Object.entries(attributes).forEach(([key, value]) => element.setAttribute(key, value));
    if (text !== undefined) element.textContent = text;
    return element;
  }

  // One panel per metric, one horizontal bar per variant, each panel on its own scale.
  function drawChart(result) {
    const rows = result.variants;
    const panelWidth = 300, label = 90, barHeight = 22, gap = 6, top = 26;
    const panelHeight = top + rows.length * (barHeight + gap);
    const chart = svg("svg", {
      id: "chart-svg", role: "img", width: "100%",
      viewBox: `0 0 ${panelWidth * METRICS.length} ${panelHeight}`,
      "aria-label": "Queries, DB time and total time per variant",
    });
    METRICS.forEach(([key, title, format], index) => {
      const panel = svg("g", { transform: `translate(${index * panelWidth},0)`, class: "panel" });
      panel.appendChild(svg("text", { x: 0, y: 16, class: "panel-title" }, title));
      const largest = Math.max(...rows.map((row) => row[key]), 1e-9);
      const room = panelWidth - label - 60;
      rows.forEach((row, position) => {
        const y = top + position * (barHeight + gap);
        const width = Math.max((row[key] / largest) * room, 1);
        panel.appendChild(svg("text", { x: 0, y: y + 15, class: "bar-label" }, row.variant));
        panel.appendChild(svg("rect", {
          x: label, y, width, height: barHeight, rx: 3,
          class: `bar bar-${position === 0 ? "naive" : row.variant === "optimized" ? "optimized" : "other"}`,
          "data-metric": key, "data-variant": row.variant,
        }));
        panel.appendChild(svg("text", { x: label + width + 4, y: y + 15, class: "bar-value" }, format(row[key])));
      });
      chart.appendChild(panel);
    });
    const holder = document.getElementById("chart");
    holder.replaceChildren(chart);
  }

  // As lab.spread.speedup_text publishes a ratio: with its 95% interval, and "no
  // measurable difference" when the interval includes 1.0.
  function bound(value) { return value < 10 ? value.toFixed(2) : value.toFixed(1); }
  function ratioText(speedup, interval) {
    if (speedup === null || speedup === undefined) return "-";
    if (!interval) return speedup.toFixed(1) + "x";
    const bounds = `[${bound(interval[0])}, ${bound(interval[1])}]`;
    if (interval[0] > 1) return `${speedup.toFixed(1)}x faster ${bounds}`;
    if (interval[1] < 1) return `${speedup.toFixed(1)}x slower ${bounds}`;
    return `no measurable difference ${bounds}`;
  }

  function fillTable(result) {
    const body = document.querySelector("#compare-table tbody");
    body.replaceChildren(...result.variants.map((row) => {
      const tr = document.createElement("tr");
      tr.dataset.variant = row.variant;
      const iqr = row.total_p25 !== undefined ? `${row.total_p25.toFixed(1)}-${row.total_p75.toFixed(1)}` : "-";
      const cells = [row.variant, row.queries.toFixed(0), row.db_ms.toFixed(1), row.total_ms.toFixed(1), iqr,
        Math.round(row.bytes).toLocaleString("en"), ratioText(row.speedup, row.speedup_ci),
        // Against the variant before it: what one tier's change bought.
        ratioText(row.vs_previous, row.vs_previous_ci),
        // What Silk added while it recorded (the profiler lesson), never in queries/DB.
        row.silk_queries !== undefined ? `${row.silk_queries.toFixed(0)} queries · ${row.silk_ms.toFixed(1)} ms` : "-"];
      cells.forEach((text) => { const td = document.createElement("td"); td.textContent = text; tr.appendChild(td); });
      return tr;
    }));
  }

  function showError(box, data, status) {
    box.replaceChildren();
    const title = document.createElement("strong");
    title.textContent = `Error ${status}: `;
    box.append(title, document.createTextNode(data.detail || "the request failed"));
    Object.entries(data.errors || {}).forEach(([field, messages]) => {
      const line = document.createElement("div");
      const texts = messages.map((m) => (typeof m === "string" ? m : m.message));
      line.textContent = `${field}: ${texts.join(" ")}`;
      box.appendChild(line);
    });
    box.hidden = false;
  }

  async function readJson(response) {
    try { return await response.json(); } catch { return { detail: response.statusText }; }
  }

  // --- live comparison ------------------------------------------------------
  // The POST starts a Celery job (lab/jobs.py) and answers 202 with its status URL;
  // the page polls it: rounds done of total, the time left, the running figures.
  const POLL_MS = 1000;
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function showProgress(data) {
    const box = document.getElementById("compare-progress");
    const bar = document.getElementById("compare-progress-bar");
    const text = document.getElementById("compare-progress-text");
    box.hidden = false;
    bar.max = data.rounds;
    bar.value = data.rounds_done;
    let line = `Round ${data.rounds_done} of ${data.rounds}`;
    if (data.state === "queued") line = `Waiting for a worker (0 of ${data.rounds} rounds)`;
    else if (data.rounds_done === 0) line += " (first visits and round 1 running)";
    if (data.eta_s !== null && data.eta_s !== undefined && data.state === "running") {
      line += ` · about ${Math.ceil(data.eta_s)} s left`;
    }
    line += ` · ${data.elapsed_s.toFixed(0)} s elapsed`;
    text.textContent = line;
    if (data.variants && data.variants.length) {
      drawChart(data);
      fillTable(data);
      document.getElementById("compare-when").textContent =
        `Running: ${data.rounds_done} of ${data.rounds} rounds so far; medians, IQR, 95% intervals.`;
      document.getElementById("compare-result").hidden = false;
    }
  }

  async function follow(statusUrl, status, errorBox) {
    for (;;) {
      await sleep(POLL_MS);
      const response = await fetch(statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      const data = await readJson(response);
      if (!response.ok) { showError(errorBox, data, response.status); status.textContent = "The comparison failed."; return; }
      if (data.state === "failed") { showError(errorBox, data, 500); status.textContent = "The comparison failed."; return; }
      showProgress(data);
      if (data.state === "done") return finish(data, status);
      status.textContent = "Measuring every variant on a worker…";
    }
  }

  function finish(data, status) {
    drawChart(data);
    fillTable(data);
    document.getElementById("compare-when").textContent =
      `Measured just now: ${data.rounds} round${data.rounds === 1 ? "" : "s"} in ${data.elapsed_s.toFixed(0)} s; medians, IQR, 95% intervals.`;
    document.getElementById("compare-result").hidden = false;
    const optimized = data.variants.find((row) => row.variant === "optimized");
    status.textContent = optimized && optimized.speedup
      ? `optimized against naive: ${ratioText(optimized.speedup, optimized.speedup_ci)}.` : "Done.";
  }

  const form = document.getElementById("compare-form");
  if (form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = document.getElementById("compare-button");
      const status = document.getElementById("compare-status");
      const errorBox = document.getElementById("compare-error");
      errorBox.hidden = true;
      button.disabled = true;
      status.textContent = "Starting the comparison…";
      try {
        const response = await fetch(config.compareUrl, {
          method: "POST",
          body: new URLSearchParams(new FormData(form)),
          headers: { Accept: "application/json", "X-CSRFToken": form.csrfmiddlewaretoken.value },
          credentials: "same-origin",
        });
        const data = await readJson(response);
        if (!response.ok) {
          showError(errorBox, data, response.status);
          status.textContent = "The comparison failed.";
          return;
        }
        showProgress(data);
        await follow(data.status_url, status, errorBox);
      } catch (error) {
        showError(errorBox, { detail: String(error) }, "network");
        status.textContent = "The comparison failed.";
      } finally {
        button.disabled = false;
      }
    });
  }
  if (config.last) drawChart(config.last);

  // --- a first visit, then the next one (lessons about the browser's cache) ----
  // Resource Timing is the browser's own account of each fetch: transferSize 0 means
  // the response came from its cache without a request; a transfer smaller than the
  // body is a revalidation (304: headers only); otherwise the body came again.
  async function timed(url, cache) {
    const absolute = new URL(url, location.href).href;
    const before = performance.getEntriesByName(absolute).length;
    const response = await fetch(url, { cache, credentials: "same-origin" });
    await response.arrayBuffer();
    for (let waited = 0; waited < 3000; waited += 50) {
      const entries = performance.getEntriesByName(absolute);
      if (entries.length > before) return { response, entry: entries[entries.length - 1] };
      await sleep(50);
    }
    throw new Error(`the browser reported no timing for ${url}`);
  }

  function nextVisitText(entry, cacheControl) {
    if (entry.transferSize === 0) {
      return /max-age/.test(cacheControl)
        ? "no request: from the browser's cache (Cache-Control says it is fresh)"
        : "no request, on a guess: no Cache-Control, so the browser made up a lifetime from Last-Modified (a deploy does not shorten it)";
    }
    if (entry.transferSize < entry.encodedBodySize) {
      return `a request: revalidated, 304 Not Modified (${entry.transferSize.toLocaleString("en")} bytes of headers)`;
    }
    return `a request: downloaded again (${entry.transferSize.toLocaleString("en")} bytes)`;
  }

  const visitsButton = document.getElementById("browser-visits-button");
  if (visitsButton) {
    visitsButton.addEventListener("click", async () => {
      const status = document.getElementById("browser-visits-status");
      const table = document.getElementById("browser-visits-table");
      const body = table.querySelector("tbody");
      visitsButton.disabled = true;
      status.textContent = "Loading each variant twice…";
      body.replaceChildren();
      try {
        for (const link of document.querySelectorAll("a.variant-url")) {
          const variant = link.closest("tr").dataset.variant;
          const first = await timed(link.dataset.base, "reload"); // the cache bypassed
          const next = await timed(link.dataset.base, "default"); // as any later visit
          const headers = first.response.headers;
          const cacheControl = headers.get("Cache-Control") || "";
          const tr = document.createElement("tr");
          tr.dataset.variant = variant;
          tr.dataset.firstTransfer = first.entry.transferSize;
          tr.dataset.encoded = first.entry.encodedBodySize;
          tr.dataset.decoded = first.entry.decodedBodySize;
          tr.dataset.nextTransfer = next.entry.transferSize;
          [variant, `${first.entry.transferSize.toLocaleString("en")} bytes`,
            `${first.entry.decodedBodySize.toLocaleString("en")} bytes`,
            headers.get("Content-Encoding") || "none (identity)", cacheControl || "none",
            headers.get("Content-Location") || "no hashed name", nextVisitText(next.entry, cacheControl),
          ].forEach((text) => { const td = document.createElement("td"); td.textContent = text; tr.appendChild(td); });
          body.appendChild(tr);
        }
        table.hidden = false;
        status.textContent = "Done: compare the bytes on the wire and the next visit.";
      } catch (error) {
        status.textContent = `Failed: ${error}`;
      } finally {
        visitsButton.disabled = false;
      }
    });
  }

  // --- run one variant -------------------------------------------------------
  const paramsForm = document.getElementById("params");
  paramsForm.addEventListener("submit", (event) => event.preventDefault());

  function currentParams() {
    const params = new URLSearchParams();
    new FormData(paramsForm).forEach((value, key) => params.append(key, value));
    return params;
  }

  // The example request as the API takes it: a GET's parameters in the query
  // string, a POST's in its JSON body (the link is then the bare URL).
  function updateLinks() {
    const params = currentParams();
    if (config.method !== "GET") {
      const body = JSON.stringify(Object.fromEntries(params));
      document.querySelectorAll(".variant-body code").forEach((code) => { code.textContent = body; });
      return;
    }
    const query = params.toString();
    document.querySelectorAll("a.variant-url").forEach((link) => {
      link.href = link.dataset.base + (query ? "?" + query : "");
      link.textContent = link.dataset.base + (query ? "?" + query : "");
    });
  }
  paramsForm.addEventListener("input", updateLinks);

  function timing(header) {
    const found = {};
    (header || "").split(",").forEach((part) => {
      const [name, ...attributes] = part.trim().split(";");
      const values = {};
      attributes.forEach((attribute) => {
        const [key, value] = attribute.split("=");
        values[key.trim()] = (value || "").replace(/"/g, "");
      });
      if (name) found[name.trim()] = values;
    });
    return found;
  }

  document.querySelectorAll(".run-button").forEach((button) => {
    button.addEventListener("click", async () => {
      const row = button.closest("tr");
      const output = row.querySelector(".run-result");
      const link = row.querySelector("a.variant-url");
      output.className = "run-result";
      output.textContent = "running…";
      const params = currentParams();
      const options = {
        method: config.method,
        headers: { Accept: config.renders === "json" ? "application/json" : "text/html" },
        credentials: "same-origin",
      };
      let url = link.dataset.base;
      if (config.method === "GET") {
        url += params.toString() ? "?" + params : "";
      } else {
        options.body = JSON.stringify(Object.fromEntries(params));
        options.headers["Content-Type"] = "application/json";
        const token = document.querySelector("input[name=csrfmiddlewaretoken]");
        if (token) options.headers["X-CSRFToken"] = token.value;
      }
      try {
        const response = await fetch(url, options);
        const body = await response.text();
        const metrics = timing(response.headers.get("Server-Timing"));
        if (!response.ok) {
          let data;
          try { data = JSON.parse(body); } catch { data = { detail: body.slice(0, 200) }; }
          output.classList.add("error");
          showError(output, data, response.status);
          return;
        }
        const db = metrics.db || {}, total = metrics.total || {};
        // `db` is the lesson's own queries; a profiler's own work has its own metric.
        const profilers = ["silk", "toolbar"].filter((name) => metrics[name])
          .map((name) => ` · ${name}: ${metrics[name].desc}, ${metrics[name].dur} ms`).join("");
        output.textContent = `${response.status} · ${db.desc || "? queries"} · DB ${db.dur || "?"} ms · ` +
          `total ${total.dur || "?"} ms · ${new Blob([body]).size.toLocaleString("en")} bytes` + profilers;
        output.classList.add("ok");
        const silk = row.querySelector(".silk-link");
        if (silk) silk.textContent = "latest request";
      } catch (error) {
        output.classList.add("error");
        showError(output, { detail: String(error) }, "network");
      }
    });
  });
})();
