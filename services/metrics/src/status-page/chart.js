// A small line chart on a canvas, written for this page (no library, nothing fetched from the network).
// new LineChart(canvas, {maxPoints}) · push(timeMs, {series: value}) · draw() · colorOf(series)
(function () {
  'use strict';
  var PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];

  function LineChart(canvas, opts) {
    this.canvas = canvas;
    this.maxPoints = (opts && opts.maxPoints) || 120;
    this.times = [];
    this.series = {}; // name -> array of numbers (NaN: no value at that time)
    this.colors = {};
  }

  LineChart.prototype.colorOf = function (name) {
    if (!this.colors[name]) this.colors[name] = PALETTE[Object.keys(this.colors).length % PALETTE.length];
    return this.colors[name];
  };

  LineChart.prototype.push = function (time, values) {
    var self = this;
    this.times.push(time);
    Object.keys(values).forEach(function (name) {
      if (!self.series[name]) {
        self.series[name] = self.times.slice(0, -1).map(function () { return NaN; });
        self.colorOf(name);
      }
    });
    Object.keys(this.series).forEach(function (name) {
      var v = values[name];
      self.series[name].push(typeof v === 'number' && isFinite(v) ? v : NaN);
    });
    if (this.times.length > this.maxPoints) {
      this.times.shift();
      Object.keys(this.series).forEach(function (name) { self.series[name].shift(); });
    }
  };

  /** Largest value currently shown for a series (0 when none). */
  LineChart.prototype.max = function (name) {
    var s = this.series[name] || [];
    return s.reduce(function (m, v) { return isNaN(v) ? m : Math.max(m, v); }, 0);
  };

  function niceMax(v) {
    if (v <= 0) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var f = v / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
  }

  LineChart.prototype.draw = function () {
    var c = this.canvas, ctx = c.getContext('2d'), self = this;
    var w = c.width, h = c.height, left = 48, right = 110, top = 8, bottom = 22;
    var pw = w - left - right, ph = h - top - bottom;
    this.plotArea = { left: left, top: top, width: pw, height: ph };
    ctx.clearRect(0, 0, w, h);
    ctx.fillStyle = '#ffffff';
    ctx.fillRect(0, 0, w, h);
    var names = Object.keys(this.series);
    var ymax = niceMax(names.reduce(function (m, n) { return Math.max(m, self.max(n)); }, 0));
    // Axes and grid.
    ctx.strokeStyle = '#e3e6ea';
    ctx.fillStyle = '#5b6475';
    ctx.font = '11px sans-serif';
    ctx.lineWidth = 1;
    for (var i = 0; i <= 4; i++) {
      var y = top + ph - (ph * i) / 4;
      ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + pw, y); ctx.stroke();
      var label = (ymax * i) / 4;
      ctx.fillText(label >= 100 ? label.toFixed(0) : label.toPrecision(2), 4, y + 4);
    }
    var n = this.times.length;
    if (n > 1) {
      var span = Math.round((this.times[n - 1] - this.times[0]) / 1000);
      ctx.fillText('last ' + span + ' s', left, h - 6);
    }
    // Lines: the points spread over the whole width until the chart holds maxPoints.
    var slots = Math.max(2, n);
    ctx.lineWidth = 2;
    names.forEach(function (name, k) {
      var s = self.series[name];
      ctx.strokeStyle = self.colorOf(name);
      ctx.beginPath();
      var drawing = false;
      for (var j = 0; j < s.length; j++) {
        if (isNaN(s[j])) { drawing = false; continue; }
        var x = left + (pw * j) / (slots - 1);
        var yy = top + ph - (ph * s[j]) / ymax;
        if (drawing) ctx.lineTo(x, yy); else ctx.moveTo(x, yy);
        drawing = true;
      }
      ctx.stroke();
      // Legend.
      ctx.fillStyle = self.colorOf(name);
      ctx.fillRect(left + pw + 10, top + 4 + k * 16, 10, 10);
      ctx.fillStyle = '#1d2330';
      ctx.fillText(name.length > 14 ? name.slice(0, 13) + '…' : name, left + pw + 24, top + 13 + k * 16);
    });
  };

  window.LineChart = LineChart;
})();
