/* Overview calibration chart (human review): share judged correct per confidence bucket against the
   diagonal. Data: stats.calibration of the JSON block #stats-data (as /api/v1/stats answers). */
(function () {
  "use strict";
  var node = document.getElementById("stats-data");
  var canvas = document.getElementById("chart-calibration");
  if (!node || !canvas || typeof Chart === "undefined") { return; }
  var cal = JSON.parse(node.textContent).calibration;
  if (!cal || !cal.enough) { return; }
  var labels = cal.buckets.map(function (b) { return b.lower.toFixed(1) + "–" + b.upper.toFixed(1); });
  new Chart(canvas, {
    data: { labels: labels, datasets: [
      { type: "bar", label: "judged correct", data: cal.buckets.map(function (b) { return b.accuracy; }), backgroundColor: "#3b6fd4" },
      { type: "line", label: "mean confidence", data: cal.buckets.map(function (b) { return b.mean_confidence; }),
        borderColor: "#e0a526", backgroundColor: "#e0a526", showLine: false, pointRadius: 4 },
      { type: "line", label: "perfect calibration", data: cal.buckets.map(function (b) { return (b.lower + b.upper) / 2; }),
        borderColor: "#888", borderDash: [4, 4], pointRadius: 0, fill: false }
    ] },
    options: {
      animation: false, maintainAspectRatio: false,
      plugins: { tooltip: { callbacks: { afterLabel: function (item) {
        return item.datasetIndex === 0 ? "reviewed: " + cal.buckets[item.dataIndex].n : ""; } } } },
      scales: { y: { min: 0, max: 1, title: { display: true, text: "share judged correct" } },
                x: { title: { display: true, text: "agent's confidence" } } }
    }
  });
})();
