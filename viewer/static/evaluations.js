/* Overview evaluation chart: mean score per day, one line per evaluator. Data: stats.evaluations
   of the JSON block #stats-data (as /api/v1/stats answers). */
(function () {
  "use strict";
  var node = document.getElementById("stats-data");
  var canvas = document.getElementById("chart-evaluations");
  if (!node || !canvas || typeof Chart === "undefined") { return; }
  var stats = JSON.parse(node.textContent);
  var series = stats.evaluations.series;
  var names = Object.keys(series).sort();
  var labels = stats.per_day.map(function (d) { return d.day; });  // the range's days, as the other charts
  var palette = ["#3b6fd4", "#2f9e62", "#d64545", "#e0a526", "#8a4fd6", "#20a4a4", "#888"];
  new Chart(canvas, {
    type: "line",
    data: { labels: labels, datasets: names.map(function (n, i) {
      var byDay = {};
      series[n].forEach(function (p) { byDay[p.day] = p.mean; });
      var color = palette[i % palette.length];
      return { label: n, data: labels.map(function (d) { return d in byDay ? byDay[d] : null; }),
               borderColor: color, backgroundColor: color, spanGaps: true };
    }) },
    options: { animation: false, maintainAspectRatio: false, scales: { y: { min: 0, max: 1, title: { display: true, text: "mean score" } } } }
  });
})();
