// The dashboard's own script: it draws the graphs with the vendored
// Cytoscape.js and keeps them drawn when htmx swaps live content in. It
// is a file, not inline script: the Content-Security-Policy allows none.
(function () {
  "use strict";

  var dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
  var ink = dark ? "#e6e6e6" : "#1f2328";
  var line = dark ? "#8b949e" : "#57606a";
  var box = dark ? "#2d333b" : "#f6f8fa";

  function draw(el) {
    if (el.dataset.drawn === "1" || typeof cytoscape !== "function") {
      return;
    }
    var doc;
    try {
      doc = JSON.parse(el.dataset.graph);
    } catch (e) {
      el.textContent = "The graph cannot be read.";
      return;
    }
    el.dataset.drawn = "1";
    cytoscape({
      container: el,
      elements: doc.elements,
      userZoomingEnabled: true,
      boxSelectionEnabled: false,
      autoungrabify: true,
      style: [
        { selector: "node", style: {
          "label": "data(label)", "text-wrap": "wrap", "text-valign": "center", "text-halign": "center",
          "font-size": 11, "color": ink, "background-color": box, "border-width": 1, "border-color": line,
          "shape": "round-rectangle", "width": "label", "height": "label", "padding": 8 } },
        { selector: "node[shape]", style: { "shape": "data(shape)" } },
        { selector: "node[color]", style: { "background-color": "data(color)", "color": "#1f2328" } },
        { selector: ".group", style: { "background-opacity": 0.08, "border-style": "dashed", "text-valign": "top", "padding": 12 } },
        { selector: "edge", style: {
          "width": 1.5, "line-color": line, "target-arrow-color": line, "target-arrow-shape": "triangle",
          "curve-style": "bezier", "label": "data(label)", "font-size": 10, "color": ink,
          "text-background-color": dark ? "#0d1117" : "#ffffff", "text-background-opacity": 1 } },
        { selector: "edge.compensation", style: { "line-style": "dashed" } }
      ],
      layout: { name: "breadthfirst", directed: true, spacingFactor: 1.1, animate: false }
    });
  }

  function drawAll(root) {
    (root || document).querySelectorAll("[data-graph]").forEach(draw);
  }

  // The runs ticked on the list survive its live updates, which replace
  // its rows.
  var selected = {};
  function restoreSelected() {
    document.querySelectorAll('input[name="run"][form="selected"]').forEach(function (box) {
      if (selected[box.value]) box.checked = true;
    });
  }
  document.addEventListener("change", function (e) {
    var box = e.target;
    if (box.matches && box.matches('input[name="run"][form="selected"]')) {
      if (box.checked) selected[box.value] = true; else delete selected[box.value];
    }
  });
  ["htmx:load", "htmx:afterSwap", "htmx:sseMessage"].forEach(function (name) {
    document.addEventListener(name, restoreSelected);
  });

  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:afterSwap", function (e) { drawAll(e.target); });
  document.addEventListener("htmx:load", function (e) { drawAll(e.target); });
  // A live stream that ends (the server restarted) is reconnected by the
  // SSE extension; nothing to do here.
})();
