// multiviz dashboard: heatmap overlays drawn on a canvas (method switch, opacity, hover) and small
// conveniences. Plain JavaScript, no library, no network request: it also runs from file://.
(function () {
  "use strict";
  var POS = [196, 30, 58], NEG = [38, 99, 186];

  function fmt(v) {
    if (v === null || v === undefined) return "no value";
    var a = Math.abs(v);
    return (v >= 0 ? "+" : "") + (a !== 0 && (a < 1e-3 || a >= 1e4) ? v.toExponential(2) : v.toPrecision(3));
  }

  // the atom grid comes as run lengths: [value, count, value, count, ...]
  function expand(runs, size) {
    var out = new Int32Array(size), at = 0;
    for (var i = 0; i + 1 < runs.length; i += 2) {
      out.fill(runs[i], at, Math.min(size, at + runs[i + 1])); at += runs[i + 1];
    }
    return out;
  }

  function setupHeatmap(figure) {
    var spec = JSON.parse(document.getElementById(figure.dataset.spec).textContent);
    var canvas = figure.querySelector("canvas"), ctx = canvas.getContext("2d");
    var select = figure.querySelector("select.layer"), opacity = figure.querySelector("input.opacity");
    var tip = figure.querySelector(".tip"), hover = figure.querySelector(".hover");
    var legend = figure.querySelector(".legend");
    var image = new Image();
    var gw = spec.image.grid_width, gh = spec.image.grid_height, grid = expand(spec.image.grid, gw * gh);
    var overlay = document.createElement("canvas");
    overlay.width = gw; overlay.height = gh;

    function layer() { return spec.layers[Number(select.value) || 0]; }

    function paintOverlay() {
      var l = layer(), octx = overlay.getContext("2d"), data = octx.createImageData(gw, gh);
      if (!l) { octx.clearRect(0, 0, gw, gh); return; }
      for (var i = 0; i < grid.length; i++) {
        var atom = grid[i], v = atom >= 0 ? l.values[atom] : null;
        if (v === null || v === undefined) continue;
        var c = v >= 0 ? POS : NEG, a = Math.min(1, Math.abs(v) / l.scale);
        data.data[4 * i] = c[0]; data.data[4 * i + 1] = c[1]; data.data[4 * i + 2] = c[2];
        data.data[4 * i + 3] = Math.round(255 * a);
      }
      octx.putImageData(data, 0, 0);
      legend.querySelector(".lo").textContent = fmt(-l.scale);
      legend.querySelector(".hi").textContent = fmt(l.scale);
      legend.querySelector(".units").textContent = l.units;
    }

    function draw() {
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      ctx.globalAlpha = 1;
      if (image.complete) ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
      ctx.imageSmoothingEnabled = false;
      ctx.globalAlpha = Number(opacity.value) / 100;
      ctx.drawImage(overlay, 0, 0, canvas.width, canvas.height);
      ctx.globalAlpha = 1;
    }

    function onMove(event) {
      var box = canvas.getBoundingClientRect();
      var x = Math.floor((event.clientX - box.left) / box.width * gw);
      var y = Math.floor((event.clientY - box.top) / box.height * gh);
      if (x < 0 || y < 0 || x >= gw || y >= gh) { tip.hidden = true; return; }
      var atom = grid[y * gw + x], l = layer();
      if (!l) return;
      var text = atom >= 0 ? l.labels[atom] + ": " + fmt(l.values[atom]) + " " + l.units : "no atom";
      tip.textContent = text; hover.textContent = text; tip.hidden = false;
      tip.style.left = (event.clientX - box.left) + "px"; tip.style.top = (event.clientY - box.top) + "px";
    }

    image.onload = draw;
    image.src = spec.image.src;
    select.addEventListener("change", function () { paintOverlay(); draw(); });
    opacity.addEventListener("input", draw);
    canvas.addEventListener("mousemove", onMove);
    canvas.addEventListener("mouseleave", function () { tip.hidden = true; });
    paintOverlay(); draw();
    figure.mvAddLayer = function (l) {
      spec.layers.push(l);
      var option = document.createElement("option");
      option.value = String(spec.layers.length - 1); option.textContent = l.name;
      select.appendChild(option); select.value = option.value;
      paintOverlay(); draw();
    };
  }

  function setupLive(section) {
    var picks = section.querySelectorAll(".word-pick"), run = section.querySelector(".run-live");
    var status = section.querySelector(".live-status");
    function chosen() {
      return Array.prototype.filter.call(picks, function (b) { return b.getAttribute("aria-pressed") === "true"; });
    }
    picks.forEach(function (b) {
      b.addEventListener("click", function () {
        b.setAttribute("aria-pressed", b.getAttribute("aria-pressed") === "true" ? "false" : "true");
        run.disabled = chosen().length === 0;
      });
    });
    run.addEventListener("click", function () {
      var words = chosen(), indices = words.map(function (b) { return Number(b.dataset.index); });
      var names = words.map(function (b) { return b.textContent; }).join(" ");
      run.disabled = true; status.textContent = "computing…";
      fetch("live/second-order", {
        method: "POST", headers: {"Content-Type": "application/json", "Accept": "application/json"},
        body: JSON.stringify({point: Number(section.dataset.point), "class": Number(section.dataset.class), words: indices})
      }).then(function (response) {
        return response.json().then(function (body) { return {status: response.status, body: body}; });
      }).then(function (answer) {
        run.disabled = false;
        if (answer.status === 429) { status.textContent = "the server is busy: retry in " + answer.body.retry_after + " s"; return; }
        if (answer.status !== 200) { status.textContent = "refused: " + (answer.body.detail || answer.status); return; }
        var figures = document.querySelectorAll('figure.heatmap[data-modality="' + section.dataset.modalityB + '"]');
        var figure = figures[figures.length - 1];
        if (figure && figure.mvAddLayer) {
          figure.mvAddLayer({name: "live: " + names, labels: answer.body.labels_b, values: answer.body.joint,
                             scale: answer.body.scale, units: answer.body.units});
        }
        status.textContent = (answer.body.cached ? "read from the run's cache" : "computed in " + answer.body.seconds.toFixed(2) + " s") +
          ": shown as the layer 'live: " + names + "'";
      }).catch(function (error) { run.disabled = false; status.textContent = "failed: " + error; });
    });
  }

  // top Shapley pairs: a line from each word to the centre (mean pixel) of its image atom
  function setupPairLinks(figure) {
    var spec = JSON.parse(document.getElementById(figure.dataset.spec).textContent);
    var svg = figure.querySelector("svg.pair-svg"), img = figure.querySelector("img.pair-image");
    var words = figure.querySelectorAll(".pair-word"), hover = figure.querySelector(".hover");
    var gw = spec.grid_width, gh = spec.grid_height, grid = expand(spec.grid, gw * gh);
    var sums = {};
    for (var i = 0; i < grid.length; i++) {
      var a = grid[i]; if (a < 0) continue;
      var s = sums[a] || (sums[a] = [0, 0, 0]);
      s[0] += (i % gw) + 0.5; s[1] += Math.floor(i / gw) + 0.5; s[2] += 1;
    }
    var NS = "http://www.w3.org/2000/svg";
    function draw() {
      var box = figure.getBoundingClientRect(), ib = img.getBoundingClientRect();
      svg.setAttribute("width", box.width); svg.setAttribute("height", box.height);
      svg.setAttribute("viewBox", "0 0 " + box.width + " " + box.height);
      while (svg.firstChild) svg.removeChild(svg.firstChild);
      spec.links.forEach(function (l) {
        var w = words[l.word], s = sums[l.atom];
        if (!w || !s) return;
        var wb = w.getBoundingClientRect();
        var x1 = wb.left + wb.width / 2 - box.left, y1 = wb.bottom - box.top;
        var x2 = ib.left - box.left + img.clientLeft + s[0] / s[2] / gw * img.clientWidth;
        var y2 = ib.top - box.top + img.clientTop + s[1] / s[2] / gh * img.clientHeight;
        var line = document.createElementNS(NS, "line"), title = document.createElementNS(NS, "title");
        var text = l.kind + ": " + l.word_label + " \u00d7 " + l.atom_label + " = " + fmt(l.value) + " logit";
        [["x1", x1], ["y1", y1], ["x2", x2], ["y2", y2], ["stroke-width", l.width]].forEach(function (kv) {
          line.setAttribute(kv[0], kv[1].toFixed ? kv[1].toFixed(2) : kv[1]);
        });
        line.setAttribute("class", l.kind);
        line.dataset.word = l.word; line.dataset.atom = l.atom; line.dataset.value = l.value;
        title.textContent = text; line.appendChild(title);
        line.addEventListener("mouseenter", function () { hover.textContent = text; w.classList.add("hot"); });
        line.addEventListener("mouseleave", function () { w.classList.remove("hot"); });
        svg.appendChild(line);
        var dot = document.createElementNS(NS, "circle");
        dot.setAttribute("cx", x2.toFixed(2)); dot.setAttribute("cy", y2.toFixed(2)); dot.setAttribute("r", 2.5);
        svg.appendChild(dot);
      });
    }
    if (img.complete) draw(); else img.addEventListener("load", draw);
    window.addEventListener("resize", draw);
  }

  document.querySelectorAll("figure.heatmap").forEach(setupHeatmap);
  document.querySelectorAll("figure.pair-links").forEach(setupPairLinks);
  document.querySelectorAll("section.live").forEach(setupLive);
  document.querySelectorAll("form.filters select").forEach(function (s) {
    s.addEventListener("change", function () { s.form.requestSubmit ? s.form.requestSubmit() : s.form.submit(); });
  });
})();
