// Time-series charts of the status page, drawn by uPlot (served by this service from its node_modules):
// a time axis, a legend with the values under the cursor, and a tooltip that follows the cursor.
// new TimeChart(figure, {digits, unit}) · set(timesInSeconds, [{label, values}]) · .u is the uPlot chart
(function () {
  'use strict';
  var PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];
  var colors = {};

  /** One colour per series name, the same in every chart. */
  function colorOf(name) {
    if (!colors[name]) colors[name] = PALETTE[Object.keys(colors).length % PALETTE.length];
    return colors[name];
  }

  function format(v, digits, unit) {
    if (v === null || v === undefined || !isFinite(v)) return '–';
    return (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(digits)) + (unit ? ' ' + unit : '');
  }

  function timeText(sec) {
    var d = new Date(sec * 1000);
    var today = new Date().toDateString() === d.toDateString();
    return (today ? '' : d.toLocaleDateString() + ' ') + d.toLocaleTimeString([], { hourCycle: 'h23' });
  }

  /** Labels of the time axis at the ticks uPlot picks: seconds shown while ticks are under a minute apart. */
  function timeTicks(u, splits, axisIdx, space, incr) {
    return splits.map(function (sec) {
      var d = new Date(sec * 1000);
      var opts = { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' };
      if (incr < 60) opts.second = '2-digit';
      if (incr >= 86400) return d.toLocaleDateString();
      return d.toLocaleTimeString([], opts);
    });
  }

  /** A box beside the cursor: the time of the nearest point, and each shown series' value there. */
  function tooltip(opts) {
    var tip;
    return {
      hooks: {
        init: function (u) {
          tip = document.createElement('div');
          tip.className = 'chart-tip';
          tip.style.display = 'none';
          u.over.appendChild(tip);
          u.over.addEventListener('mouseleave', function () {
            tip.style.display = 'none';
          });
        },
        setCursor: function (u) {
          var i = u.cursor.idx;
          if (i === null || i === undefined || u.cursor.left === undefined || u.cursor.left < 0) {
            tip.style.display = 'none';
            return;
          }
          tip.textContent = '';
          var head = document.createElement('b');
          head.textContent = timeText(u.data[0][i]);
          tip.appendChild(head);
          for (var s = 1; s < u.series.length; s++) {
            if (!u.series[s].show) continue;
            var row = document.createElement('div');
            var mark = document.createElement('i');
            mark.style.background = u.series[s].stroke(u, s);
            row.appendChild(mark);
            row.appendChild(document.createTextNode(u.series[s].label + ': ' + format(u.data[s][i], opts.digits, opts.unit)));
            tip.appendChild(row);
          }
          tip.style.display = 'block';
          var w = u.over.clientWidth;
          var left = u.cursor.left + 14;
          if (left + tip.offsetWidth > w) left = Math.max(0, u.cursor.left - 14 - tip.offsetWidth);
          tip.style.left = left + 'px';
          tip.style.top = Math.max(0, Math.min(u.cursor.top + 10, u.over.clientHeight - tip.offsetHeight)) + 'px';
        },
      },
    };
  }

  function TimeChart(figure, opts) {
    this.figure = figure;
    this.opts = opts || {};
    this.u = null;
    this.key = null;
    this.empty = document.createElement('p');
    this.empty.className = 'chart-empty';
    this.empty.textContent = 'no data yet';
    figure.appendChild(this.empty);
  }

  TimeChart.prototype.options = function (series) {
    var o = this.opts;
    return {
      width: o.width || 560,
      height: o.height || 220,
      scales: {
        x: { time: true },
        y: {
          range: function (u, min, max) {
            return [0, max > 0 ? max * 1.15 : 1];
          },
        },
      },
      axes: [
        { grid: { stroke: '#eceff3' }, values: timeTicks },
        {
          size: 56,
          grid: { stroke: '#eceff3' },
          values: function (u, splits) {
            return splits.map(function (v) {
              return format(v, v < 10 ? 2 : 0, '');
            });
          },
        },
      ],
      series: [
        {
          label: 'time',
          value: function (u, v) {
            return v === null ? '–' : timeText(v);
          },
        },
      ].concat(
        series.map(function (s) {
          return {
            label: s.label,
            stroke: colorOf(s.label),
            width: 2,
            spanGaps: false,
            value: function (u, v) {
              return format(v, o.digits, o.unit);
            },
          };
        }),
      ),
      cursor: { points: { size: 6 } },
      legend: { live: true },
      plugins: [tooltip(o)],
    };
  };

  /** Draws the series over the times (seconds since the epoch); a new set of series makes a new chart. */
  TimeChart.prototype.set = function (time, series) {
    var key = series
      .map(function (s) {
        return s.label;
      })
      .join('\n');
    var data = [time].concat(
      series.map(function (s) {
        return s.values;
      }),
    );
    this.empty.style.display = time.length && series.length ? 'none' : 'block';
    if (this.u && key === this.key) {
      this.u.setData(data);
      return;
    }
    if (this.u) this.u.destroy();
    this.u = null;
    this.key = key;
    if (!series.length) return;
    this.u = new uPlot(this.options(series), data, this.figure);
  };

  window.TimeChart = TimeChart;
  window.TimeChart.colorOf = colorOf;
})();
