// Drift section of the status page: per model version, every feature's PSI drawn as a bar against the
// thresholds, its mean shift (z-score), status and the rows in the window. Reads api/v1/drift.
(function () {
  'use strict';
  var interval = 5000;
  function td(text, cls) {
    var c = document.createElement('td');
    c.textContent = text;
    if (cls) c.className = cls;
    return c;
  }
  function bar(psi, t) {
    var c = document.createElement('td');
    if (psi === null) {
      c.textContent = 'too few samples';
      c.className = 'muted';
      return c;
    }
    var scale = Math.max(t.psi_critical * 2, psi);
    var box = document.createElement('div');
    box.className = 'psi-bar';
    var fill = document.createElement('span');
    fill.style.width = ((100 * psi) / scale).toFixed(1) + '%';
    fill.className = psi >= t.psi_critical ? 'drift' : psi >= t.psi_warning ? 'warning' : 'ok';
    box.appendChild(fill);
    [t.psi_warning, t.psi_critical].forEach(function (x) {
      var m = document.createElement('i');
      m.style.left = ((100 * x) / scale).toFixed(1) + '%';
      box.appendChild(m);
    });
    var label = document.createElement('small');
    label.textContent = ' ' + psi.toFixed(3);
    c.appendChild(box);
    c.appendChild(label);
    return c;
  }
  function render(d) {
    var body = document.querySelector('#drift tbody');
    body.textContent = '';
    if (!d.models.length) {
      var tr = document.createElement('tr');
      var c = td('no model version has a drift profile (docs/operations.md#drift)', 'muted');
      c.colSpan = 7;
      tr.appendChild(c);
      body.appendChild(tr);
    }
    d.models.forEach(function (m) {
      m.features.forEach(function (f, i) {
        var tr = document.createElement('tr');
        tr.appendChild(td(i === 0 ? m.model + ' v' + m.version : ''));
        tr.appendChild(td(f.feature + (f.side === 'output' ? ' (output)' : '')));
        tr.appendChild(td(f.status.replace(/_/g, ' '), f.status));
        tr.appendChild(bar(f.psi, m.thresholds));
        tr.appendChild(td(f.zscore === null ? '–' : f.zscore.toFixed(2)));
        tr.appendChild(td(m.samples + ' / ' + m.min_samples));
        tr.appendChild(td(m.window_seconds + ' s'));
        body.appendChild(tr);
      });
    });
  }
  function poll() {
    fetch('api/v1/drift', { cache: 'no-store' })
      .then(function (r) {
        if (!r.ok) throw new Error('drift answered ' + r.status);
        return r.json();
      })
      .then(render)
      .catch(function () {
        /* the summary line already says when the service is unreachable */
      })
      .finally(function () {
        setTimeout(poll, interval);
      });
  }
  poll();
})();
