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

  function fillTable(result) {
    const body = document.querySelector("#compare-table tbody");
    body.replaceChildren(...result.variants.map((row) => {
      const tr = document.createElement("tr");
      const cells = [row.variant, row.queries.toFixed(0), row.db_ms.toFixed(1), row.total_ms.toFixed(1),
        Math.round(row.bytes).toLocaleString("en"), row.speedup ? row.speedup.toFixed(1) + "×" : "-",
        // Against the variant before it: what one tier's change bought.
        row.vs_previous ? row.vs_previous.toFixed(1) + "×" : "-",
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
  const form = document.getElementById("compare-form");
  if (form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = document.getElementById("compare-button");
      const status = document.getElementById("compare-status");
      const errorBox = document.getElementById("compare-error");
      errorBox.hidden = true;
      button.disabled = true;
      status.textContent = "Measuring every variant on the server…";
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
        drawChart(data);
        fillTable(data);
        document.getElementById("compare-when").textContent =
          `Measured just now: ${data.rounds} round${data.rounds === 1 ? "" : "s"}, medians.`;
        document.getElementById("compare-result").hidden = false;
        const optimized = data.variants.find((row) => row.variant === "optimized");
        status.textContent = optimized && optimized.speedup
          ? `optimized is ${optimized.speedup.toFixed(1)}× faster than naive.` : "Done.";
      } catch (error) {
        showError(errorBox, { detail: String(error) }, "network");
        status.textContent = "The comparison failed.";
      } finally {
        button.disabled = false;
      }
    });
  }
  if (config.last) drawChart(config.last);

  // --- run one variant -------------------------------------------------------
  const paramsForm = document.getElementById("params");
  paramsForm.addEventListener("submit", (event) => event.preventDefault());

  function currentParams() {
    const params = new URLSearchParams();
    new FormData(paramsForm).forEach((value, key) => params.append(key, value));
    return params;
  }

  function updateLinks() {
    const query = currentParams().toString();
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
