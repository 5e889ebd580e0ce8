// The status page: polls /api/v1/stats and draws the figures. ?interval=<ms> changes the poll period.
(function () {
  'use strict';
  var params = new URLSearchParams(location.search);
  var interval = Math.max(200, Number(params.get('interval')) || 2000);
  var charts = {
    requests: new LineChart(document.getElementById('chart-requests')),
    latency: new LineChart(document.getElementById('chart-latency')),
    queue: new LineChart(document.getElementById('chart-queue')),
    cpu: new LineChart(document.getElementById('chart-cpu')),
  };
  var state = { charts: charts, updates: 0, last: null, error: null };
  window.inferrerStatus = state;

  function fmt(v, digits) { return v === null || v === undefined ? '–' : Number(v).toFixed(digits); }
  function ms(v) { return v === null || v === undefined ? '–' : (v * 1000).toFixed(v < 0.01 ? 2 : 1); }
  function cell(text, cls) { var td = document.createElement('td'); td.textContent = text; if (cls) td.className = cls; return td; }
  function fillTable(id, rows) {
    var body = document.querySelector('#' + id + ' tbody');
    body.textContent = '';
    rows.forEach(function (cells) {
      var tr = document.createElement('tr');
      cells.forEach(function (c) { tr.appendChild(c); });
      body.appendChild(tr);
    });
  }
  function bytes(b) { return (b / 1024 / 1024 / 1024).toFixed(1) + ' GiB'; }

  function render(s) {
    var now = Date.parse(s.time) || Date.now();
    var req = {}, lat = {}, queue = {};
    s.models.forEach(function (m) {
      req[m.model] = m.requests_per_second;
      lat[m.model] = m.latency_seconds.p95 === null ? NaN : m.latency_seconds.p95 * 1000;
      queue[m.model] = m.queue_depth;
    });
    charts.requests.push(now, req);
    charts.latency.push(now, lat);
    charts.queue.push(now, queue);
    charts.cpu.push(now, s.host ? { cpu: s.host.cpu_usage_ratio * 100 } : {});
    Object.keys(charts).forEach(function (k) { charts[k].draw(); });

    var up = s.modelhosts.filter(function (w) { return w.up; }).length;
    document.getElementById('summary').textContent = up + '/' + s.modelhosts.length + ' modelhosts up · ' + s.models.length + ' models · updated ' + new Date(now).toLocaleTimeString();
    document.getElementById('window').textContent = '(rates over the last ' + s.window_seconds + ' s)';
    fillTable('models', s.models.map(function (m) {
      return [cell(m.model), cell(m.versions.join(', ')), cell(fmt(m.requests_per_second, 2)), cell(m.error_rate === null ? '–' : (m.error_rate * 100).toFixed(2) + ' %'),
        cell(ms(m.latency_seconds.p50)), cell(ms(m.latency_seconds.p95)), cell(ms(m.latency_seconds.p99)), cell(fmt(m.batch_size_mean, 2)), cell(String(m.queue_depth)), cell(m.workers.join(', '))];
    }));
    fillTable('workers', s.modelhosts.map(function (w) {
      return [cell(w.id), cell(w.url), cell(w.up ? 'up' : 'down: ' + (w.error || ''), w.up ? 'up' : 'down'), cell(w.models.map(function (m) { return m.name + '@' + m.version + ' (' + m.state + ')'; }).join(', '))];
    }));
    var infra = [];
    if (s.nginx) infra.push('nginx: ' + (s.nginx.up ? 'up' : 'DOWN ' + (s.nginx.error || '')) + ', ' + s.nginx.active + ' active connections, ' + s.nginx.requests + ' requests served');
    if (s.host) infra.push('host ' + s.host.hostname + ': ' + s.host.cpu_cores + ' CPUs, ' + (s.host.cpu_usage_ratio * 100).toFixed(0) + ' % busy, load ' + s.host.load_average['1m'].toFixed(2) +
      ', memory ' + bytes(s.host.memory_available_bytes) + ' free of ' + bytes(s.host.memory_total_bytes) + (s.host.disk ? ', disk ' + bytes(s.host.disk.free_bytes) + ' free of ' + bytes(s.host.disk.total_bytes) : ''));
    (s.host ? s.host.gpus : []).forEach(function (g) { infra.push('GPU ' + g.index + ' ' + g.name + ': ' + (g.utilization_ratio * 100).toFixed(0) + ' %, ' + bytes(g.memory_used_bytes) + ' of ' + bytes(g.memory_total_bytes)); });
    document.getElementById('infra').textContent = infra.join('\n') || 'no load balancer or host figures configured';
  }

  function poll() {
    fetch('api/v1/stats', { cache: 'no-store' })
      .then(function (r) { if (!r.ok) throw new Error('stats answered ' + r.status); return r.json(); })
      .then(function (s) { state.last = s; state.error = null; render(s); state.updates++; })
      .catch(function (err) { state.error = String(err); document.getElementById('summary').textContent = 'cannot reach the metrics service: ' + err.message; })
      .finally(function () { setTimeout(poll, interval); });
  }
  poll();
})();
