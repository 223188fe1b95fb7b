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

  // Day axis: short labels ("Nov 24"), thinned evenly counting back from the last day so the
  // last day of the range always has its label. Tooltips keep the full date.
  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  var oneYear = days.length > 0 && days[0].slice(0, 4) === days[days.length - 1].slice(0, 4);
  function shortDay(day) {
    var label = MONTHS[parseInt(day.slice(5, 7), 10) - 1] + " " + parseInt(day.slice(8, 10), 10);
    return oneYear ? label : label + " " + day.slice(0, 4);
  }
  function dayAxis(extra) {
    var axis = {
      ticks: {
        autoSkip: false, maxRotation: 0,
        callback: function (value, index) {
          var room = Math.max(2, Math.floor((this.width || this.chart.width) / (oneYear ? 52 : 84)));
          var every = Math.max(1, Math.ceil(days.length / room));
          return (days.length - 1 - index) % every === 0 ? shortDay(days[index]) : null;
        }
      }
    };
    for (var key in extra) { if (Object.prototype.hasOwnProperty.call(extra, key)) { axis[key] = extra[key]; } }
    return axis;
  }
  function usd(value) { return "$" + Number(value).toLocaleString("en-US", { maximumFractionDigits: 4 }); }

  make("chart-status", {
    type: "bar",
    data: { labels: days, datasets: [
      { label: "SUCCESS", data: pick("success"), backgroundColor: colors.success },
      { label: "PARTIAL", data: pick("partial"), backgroundColor: colors.partial },
      { label: "FAILED", data: pick("failed"), backgroundColor: colors.failed }
    ] },
    options: { scales: { x: dayAxis({ stacked: true }), y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } }
  });
  make("chart-quality", {
    type: "line",
    data: { labels: days, datasets: [
      { label: "avg confidence", data: pick("avg_confidence"), borderColor: colors.blue, backgroundColor: colors.blue, spanGaps: true },
      { label: "avg hallucination risk", data: pick("avg_hallucination_risk"), borderColor: colors.failed, backgroundColor: colors.failed, spanGaps: true }
    ] },
    options: { scales: { x: dayAxis({}), y: { min: 0, max: 1 } } }
  });
  make("chart-duration", {
    type: "bar",
    data: { labels: stats.duration_histogram.map(function (b) { return b.bucket; }),
            datasets: [{ label: "tickets", data: stats.duration_histogram.map(function (b) { return b.tickets; }), backgroundColor: colors.violet }] },
    options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
  });
  make("chart-nodes", {
    type: "bar",
    data: { labels: stats.node_durations.map(function (n) { return n.node; }),
            datasets: [{ label: "avg ms", data: stats.node_durations.map(function (n) { return n.avg_ms; }), backgroundColor: colors.blue }] },
    options: {
      indexAxis: "y",
      plugins: { legend: { display: false },
                 tooltip: { callbacks: { label: function (item) { return "avg " + Number(item.parsed.x).toLocaleString("en-US", { maximumFractionDigits: 1 }) + " ms"; } } } },
      scales: { x: { beginAtZero: true, title: { display: true, text: "average duration (ms)" },
                     ticks: { callback: function (value) { return Number(value).toLocaleString("en-US") + " ms"; } } } }
    }
  });
  make("chart-cost", {
    type: "line",
    data: { labels: days, datasets: [{ label: "cost USD", data: pick("cost_usd"), borderColor: colors.success, backgroundColor: colors.success, fill: false }] },
    options: {
      plugins: { legend: { display: false },
                 tooltip: { callbacks: { label: function (item) { return "cost " + usd(item.parsed.y); } } } },
      scales: { x: dayAxis({}), y: { beginAtZero: true, ticks: { callback: usd } } }
    }
  });
  if (stats.recontact) {
    var rc = stats.recontact.per_day;
    make("chart-recontact", {
      type: "line",
      data: { labels: rc.map(function (d) { return d.day; }), datasets: [
        { label: "recontact rate", data: rc.map(function (d) { return d.rate; }), borderColor: colors.violet,
          backgroundColor: colors.violet, spanGaps: true }
      ] },
      options: {
        plugins: { legend: { display: false },
                   tooltip: { callbacks: { label: function (item) {
                     var d = rc[item.dataIndex];
                     return Math.round(item.parsed.y * 1000) / 10 + " % (" + d.recontacted + " of " + d.resolved + " resolved)";
                   } } } },
        scales: { x: dayAxis({}), y: { min: 0, max: 1, ticks: { callback: function (v) { return Math.round(v * 100) + " %"; } } } }
      }
    });
  }
})();
