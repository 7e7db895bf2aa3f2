// Plotly figures on a phone (Jupyter Book adds every .js in _static/ to every page).
// The figures are laid out for a desktop column: legend on the right, dropdown menus side by side,
// a caption under the x axis wrapped at ~95 characters. Below 640 px that squeezes the plot to a
// sliver, stacks the menus on top of each other and cuts the caption. Here, once a figure is drawn
// on a narrow screen: the menus are stacked at the left, the legend goes under the plot in rows,
// and the caption is re-wrapped to the width. Nothing changes on wider screens.
// tests/test_browser.py checks the result at 390 px (legend, caption, menus inside each figure).
(function () {
  "use strict";
  var NARROW = 640;
  var CAPTION_SHIFT = -62; // resnet_nb.plots._layout puts its caption annotation here (pixels under the plot)

  function rewrap(text, width) {
    var words = text.replace(/<br>/g, " ").split(/\s+/).filter(Boolean);
    var lines = [], line = "";
    words.forEach(function (w) {
      if (line && (line + " " + w).length > width) { lines.push(line); line = w; } else { line = line ? line + " " + w : w; }
    });
    if (line) lines.push(line);
    return lines;
  }

  function adapt(gd) {
    if (gd.dataset.phoneLayout || window.innerWidth > NARROW || !gd._fullLayout || !window.Plotly) return;
    gd.dataset.phoneLayout = "1";
    var layout = gd.layout || {}, full = gd._fullLayout, update = {};
    var width = gd.clientWidth || window.innerWidth;
    var menus = layout.updatemenus || [];
    menus.forEach(function (_, i) { // stacked, first menu on top
      update["updatemenus[" + i + "].x"] = 0;
      update["updatemenus[" + i + "].xanchor"] = "left";
      update["updatemenus[" + i + "].y"] = 1.02;
      update["updatemenus[" + i + "].yanchor"] = "bottom";
      update["updatemenus[" + i + "].pad"] = {t: 0, b: 0, l: 0, r: 0};
    });
    var captionLines = 0;
    (layout.annotations || []).forEach(function (a, i) {
      if (a.yshift === CAPTION_SHIFT && typeof a.text === "string") {
        var lines = rewrap(a.text, Math.max(30, Math.floor((width - 66) / 6.3))); // inside the margins (l 56, r 10)
        captionLines = lines.length;
        update["annotations[" + i + "].text"] = lines.join("<br>");
      }
    });
    var traces = (gd.data || []).filter(function (t) { return t.showlegend !== false && t.name; }).length;
    var legendRows = full.showlegend ? Math.ceil(traces / Math.max(1, Math.floor(width / 170))) : 0;
    var captionPx = captionLines ? 70 + 15 * captionLines : 60;
    // a figure with one row per item (the ledger's forest plot) names the plot height it needs in meta
    var keep = layout.meta && layout.meta.phone_plot_px;
    var plotPx = keep ? keep : Math.min(380, Math.round(width * 0.9));
    var top = (keep && layout.meta.phone_top_px) || 50 + 34 * menus.length;
    if (full.showlegend) {
      update["legend.orientation"] = "h";
      update["legend.x"] = 0;
      update["legend.xanchor"] = "left";
      update["legend.yref"] = "container";
      update["legend.y"] = 0;
      update["legend.yanchor"] = "bottom";
    }
    update["margin.l"] = 56;
    update["margin.r"] = 10;
    update["margin.t"] = top;
    update["margin.b"] = captionPx + 28 * legendRows + 8;
    update.height = top + plotPx + captionPx + 28 * legendRows + 8;
    if (menus.length > 1) { // the second and later menus sit above the first: shift them up in paper units
      menus.forEach(function (_, i) {
        update["updatemenus[" + i + "].y"] = 1.02 + (34 * (menus.length - 1 - i)) / plotPx;
      });
    }
    // the figure's div (or the wrapper plotly's HTML puts around it) carries the desktop height in its style
    [gd, gd.parentElement].forEach(function (el) {
      if (el && /px$/.test(el.style.height)) el.style.height = update.height + "px";
    });
    window.Plotly.relayout(gd, update);
  }

  function adaptAll() {
    document.querySelectorAll(".js-plotly-plot").forEach(function (gd) {
      if (gd._fullLayout) adapt(gd);
      else if (gd.on) gd.on("plotly_afterplot", function () { adapt(gd); });
    });
  }

  // Figures drawn later (e.g. inside a widget's saved output) are adapted when they appear.
  var pending = null;
  function schedule() { clearTimeout(pending); pending = setTimeout(adaptAll, 150); }
  window.addEventListener("load", function () {
    adaptAll();
    if (window.innerWidth <= NARROW && window.MutationObserver) {
      new MutationObserver(schedule).observe(document.body, {childList: true, subtree: true});
    }
  });
})();
