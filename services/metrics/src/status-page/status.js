// The status page. Charts: the metrics service's history of the per-model summary (GET api/v1/history,
// the last HISTORY_S seconds, so they are full on load), then the points of each new scrape (?since=).
// Tables: GET api/v1/stats. ?interval=<ms> changes the poll period.
(function () {
  'use strict';
  var params = new URLSearchParams(location.search);
  var interval = Math.max(200, Number(params.get('interval')) || 2000);
  function chart(id, opts) {
    return new TimeChart(document.getElementById(id), opts);
  }
  var charts = {
    requests: chart('chart-requests', { digits: 2, unit: 'req/s' }),
    latency: chart('chart-latency', { digits: 1, unit: 'ms' }),
    clientErrors: chart('chart-client-errors', { digits: 2, unit: '/s' }),
    serverErrors: chart('chart-server-errors', { digits: 2, unit: '/s' }),
    queue: chart('chart-queue', { digits: 0, unit: '' }),
    cpu: chart('chart-cpu', { digits: 0, unit: '%' }),
  };
  // history: columns as the service serves them, appended to on each poll and cut to its length.
  var state = { charts: charts, history: { time: [], models: {}, cpu: [], seconds: 0, interval: 0 }, updates: 0, historyUpdates: 0, last: null, error: null };
  window.inferrerStatus = state;

  function nulls(n) {
    var a = [];
    for (var i = 0; i < n; i++) a.push(null);
    return a;
  }

  function merge(h) {
    var H = state.history,
      before = H.time.length,
      added = h.time.length;
    H.seconds = h.history_seconds;
    H.interval = h.scrape_interval_seconds;
    if (!added) return false;
    Array.prototype.push.apply(H.time, h.time);
    Array.prototype.push.apply(H.cpu, h.host.cpu_usage_ratio);
    Object.keys(h.models).forEach(function (name) {
      if (!H.models[name]) {
        H.models[name] = {};
        Object.keys(h.models[name]).forEach(function (f) {
          H.models[name][f] = nulls(before);
        });
      }
    });
    Object.keys(H.models).forEach(function (name) {
      var cols = H.models[name],
        add = h.models[name];
      Object.keys(cols).forEach(function (f) {
        Array.prototype.push.apply(cols[f], add ? add[f] : nulls(added));
      });
    });
    // Forget what is older than the service keeps, and models with nothing left.
    var from = H.time[H.time.length - 1] - H.seconds,
      cut = 0;
    while (cut < H.time.length - 1 && H.time[cut] < from) cut++;
    if (cut) {
      H.time.splice(0, cut);
      H.cpu.splice(0, cut);
      Object.keys(H.models).forEach(function (name) {
        var cols = H.models[name];
        Object.keys(cols).forEach(function (f) {
          cols[f].splice(0, cut);
        });
        if (
          cols.requests_per_second.every(function (v) {
            return v === null;
          })
        )
          delete H.models[name];
      });
    }
    return true;
  }

  function draw() {
    var H = state.history,
      names = Object.keys(H.models).sort();
    function per(figure, scale) {
      return names.map(function (n) {
        return {
          label: n,
          values: H.models[n][figure].map(function (v) {
            return v === null ? null : v * scale;
          }),
        };
      });
    }
    charts.requests.set(H.time, per('requests_per_second', 1));
    charts.latency.set(H.time, per('latency_p95_seconds', 1000));
    charts.clientErrors.set(H.time, per('client_errors_per_second', 1));
    charts.serverErrors.set(H.time, per('errors_per_second', 1));
    charts.queue.set(H.time, per('queue_depth', 1));
    var cpu = H.cpu.some(function (v) {
      return v !== null;
    })
      ? [
          {
            label: 'cpu',
            values: H.cpu.map(function (v) {
              return v === null ? null : v * 100;
            }),
          },
        ]
      : [];
    charts.cpu.set(H.time, cpu);
    var minutes = H.seconds >= 120 ? Math.round(H.seconds / 60) + ' min' : H.seconds + ' s';
    document.getElementById('span').textContent = H.seconds
      ? 'charts: the last ' + minutes + ', a point every ' + H.interval + ' s'
      : 'no history kept (HISTORY_S=0)';
  }

  function fmt(v, digits) {
    return v === null || v === undefined ? '–' : Number(v).toFixed(digits);
  }
  function pct(v) {
    return v === null || v === undefined ? '–' : (v * 100).toFixed(2) + ' %';
  }
  function ms(v) {
    return v === null || v === undefined ? '–' : (v * 1000).toFixed(v < 0.01 ? 2 : 1);
  }
  function cell(text, cls) {
    var td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }
  function fillTable(id, rows) {
    var body = document.querySelector('#' + id + ' tbody');
    body.textContent = '';
    rows.forEach(function (cells) {
      var tr = document.createElement('tr');
      cells.forEach(function (c) {
        tr.appendChild(c);
      });
      body.appendChild(tr);
    });
  }
  function bytes(b) {
    return (b / 1024 / 1024 / 1024).toFixed(1) + ' GiB';
  }

  function render(s) {
    var now = Date.parse(s.time) || Date.now();
    var up = s.modelhosts.filter(function (w) {
      return w.up;
    }).length;
    document.getElementById('summary').textContent =
      up + '/' + s.modelhosts.length + ' modelhosts up · ' + s.models.length + ' models · updated ' + new Date(now).toLocaleTimeString();
    document.getElementById('window').textContent =
      '(rates over the last ' + s.window_seconds + " s; 4xx: refused as the client's fault, 5xx: failed on the server)";
    fillTable(
      'models',
      s.models.map(function (m) {
        return [
          cell(m.model),
          cell(m.versions.join(', ')),
          cell(fmt(m.requests_per_second, 2)),
          cell(pct(m.client_error_rate)),
          cell(pct(m.error_rate)),
          cell(ms(m.latency_seconds.p50)),
          cell(ms(m.latency_seconds.p95)),
          cell(ms(m.latency_seconds.p99)),
          cell(fmt(m.batch_size_mean, 2)),
          cell(String(m.queue_depth)),
          cell(m.workers.join(', ')),
        ];
      }),
    );
    fillTable(
      'workers',
      s.modelhosts.map(function (w) {
        return [
          cell(w.id),
          cell(w.url),
          cell(w.up ? 'up' : 'down: ' + (w.error || ''), w.up ? 'up' : 'down'),
          cell(
            w.models
              .map(function (m) {
                return m.name + '@' + m.version + ' (' + m.state + ')';
              })
              .join(', '),
          ),
        ];
      }),
    );
    var infra = [];
    if (s.nginx)
      infra.push(
        'nginx: ' +
          (s.nginx.up ? 'up' : 'DOWN ' + (s.nginx.error || '')) +
          ', ' +
          s.nginx.active +
          ' active connections, ' +
          s.nginx.requests +
          ' requests served',
      );
    if (s.host)
      infra.push(
        'host ' +
          s.host.hostname +
          ': ' +
          s.host.cpu_cores +
          ' CPUs, ' +
          (s.host.cpu_usage_ratio * 100).toFixed(0) +
          ' % busy, load ' +
          s.host.load_average['1m'].toFixed(2) +
          ', memory ' +
          bytes(s.host.memory_available_bytes) +
          ' free of ' +
          bytes(s.host.memory_total_bytes) +
          (s.host.disk ? ', disk ' + bytes(s.host.disk.free_bytes) + ' free of ' + bytes(s.host.disk.total_bytes) : ''),
      );
    (s.host ? s.host.gpus : []).forEach(function (g) {
      infra.push(
        'GPU ' +
          g.index +
          ' ' +
          g.name +
          ': ' +
          (g.utilization_ratio * 100).toFixed(0) +
          ' %, ' +
          bytes(g.memory_used_bytes) +
          ' of ' +
          bytes(g.memory_total_bytes),
      );
    });
    document.getElementById('infra').textContent = infra.join('\n') || 'no load balancer or host figures configured';
  }

  function json(what) {
    return function (r) {
      if (!r.ok) throw new Error(what + ' answered ' + r.status);
      return r.json();
    };
  }
  function failed(err) {
    state.error = String(err);
    document.getElementById('summary').textContent = 'cannot reach the metrics service: ' + err.message;
  }

  function pollHistory() {
    var H = state.history;
    var since = H.time.length ? '?since=' + Math.round(H.time[H.time.length - 1] * 1000) : '';
    fetch('api/v1/history' + since, { cache: 'no-store' })
      .then(json('history'))
      .then(function (h) {
        if (merge(h) || !state.historyUpdates) draw();
        state.historyUpdates++;
      })
      .catch(failed)
      .finally(function () {
        setTimeout(pollHistory, interval);
      });
  }

  function pollStats() {
    fetch('api/v1/stats', { cache: 'no-store' })
      .then(json('stats'))
      .then(function (s) {
        state.last = s;
        state.error = null;
        render(s);
        state.updates++;
      })
      .catch(failed)
      .finally(function () {
        setTimeout(pollStats, interval);
      });
  }
  pollHistory();
  pollStats();
})();
