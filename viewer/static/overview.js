/* Overview charts. Data comes from the JSON block #stats-data (the same data as /api/v1/stats). */
(function () {
  "use strict";
  var node = document.getElementById("stats-data");
  if (!node || typeof Chart === "undefined") { return; }
  var stats = JSON.parse(node.textContent);
  var days = stats.per_day.map(function (d) { return d.day; });
  var colors = { success: "#2f9e62", partial: "#e0a526", failed: "#d64545", blue: "#3b6fd4", violet: "#8a4fd6" };
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.font.family = "system-ui, sans-serif";

  function make(id, config) {
    var canvas = document.getElementById(id);
    if (canvas) { new Chart(canvas, config); }
  }
  function pick(key) { return stats.per_day.map(function (d) { return d[key]; }); }

  make("chart-status", {
    type: "bar",
    data: { labels: days, datasets: [
      { label: "SUCCESS", data: pick("success"), backgroundColor: colors.success },
      { label: "PARTIAL", data: pick("partial"), backgroundColor: colors.partial },
      { label: "FAILED", data: pick("failed"), backgroundColor: colors.failed }
    ] },
    options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } }
  });
  make("chart-quality", {
    type: "line",
    data: { labels: days, datasets: [
      { label: "avg confidence", data: pick("avg_confidence"), borderColor: colors.blue, backgroundColor: colors.blue, spanGaps: true },
      { label: "avg hallucination risk", data: pick("avg_hallucination_risk"), borderColor: colors.failed, backgroundColor: colors.failed, spanGaps: true }
    ] },
    options: { scales: { y: { min: 0, max: 1 } } }
  });
  make("chart-duration", {
    type: "bar",
    data: { labels: stats.duration_histogram.map(function (b) { return b.bucket; }),
            datasets: [{ label: "tickets", data: stats.duration_histogram.map(function (b) { return b.tickets; }), backgroundColor: colors.violet }] },
    options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true } } }
  });
  make("chart-nodes", {
    type: "bar",
    data: { labels: stats.node_durations.map(function (n) { return n.node; }),
            datasets: [{ label: "avg ms", data: stats.node_durations.map(function (n) { return n.avg_ms; }), backgroundColor: colors.blue }] },
    options: { indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true } } }
  });
  make("chart-cost", {
    type: "line",
    data: { labels: days, datasets: [{ label: "cost USD", data: pick("cost_usd"), borderColor: colors.success, backgroundColor: colors.success, fill: false }] },
    options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true } } }
  });
})();
