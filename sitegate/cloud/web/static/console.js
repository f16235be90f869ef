// Draws the console's charts with uPlot (vendored); the data sits beside each chart as a
// JSON script block, so no inline script is needed (the Content-Security-Policy forbids it).
"use strict";
(function () {
  const colours = ["#1f5fa8", "#a0a7b0", "#1d6b35", "#c07a12"];

  function draw(fig) {
    const data = JSON.parse(fig.querySelector("script[type='application/json']").textContent);
    const box = fig.querySelector(".plot");
    box.textContent = "";
    const width = Math.max(260, Math.min(box.clientWidth || 600, 900));
    const bars = fig.dataset.kind === "compare" || fig.dataset.kind === "bars";
    const xs = data.x.map((_, i) => i);
    const series = [{ label: "" }].concat(data.series.map((s, i) => ({
      label: data.labels[i], stroke: colours[i], fill: bars ? colours[i] + "cc" : undefined,
      width: bars ? 0 : 1.5, spanGaps: false,
      paths: bars ? uPlot.paths.bars({ size: [0.8 / data.series.length, 40],
                                       align: data.series.length === 1 ? 0 : (i === 0 ? -1 : 1) }) : undefined,
      points: { show: false },
    })));
    const opts = {
      width: width, height: 240, series: series, legend: { show: true },
      // bars stand on zero; a line keeps uPlot's own range
      scales: { x: { time: false },
                y: bars ? { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } : {} },
      axes: [{ values: (u, ticks) => ticks.map(t => data.x[Math.round(t)] ?? "") },
             { label: fig.dataset.unit || "" }],
    };
    new uPlot(opts, [xs].concat(data.series), box);
  }

  function drawAll(root) {
    if (typeof uPlot === "undefined") return;
    root.querySelectorAll("figure.chart").forEach(draw);
  }
  document.addEventListener("DOMContentLoaded", () => drawAll(document));
  document.addEventListener("htmx:afterSwap", (e) => drawAll(e.target));
})();
