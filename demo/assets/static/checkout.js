// The demo shop's own script: mounts chdproxy's hosted fields with collect.js and
// talks to its own backend (/api/...), which pays with the token. Card values never
// reach this page: the inputs live in a frame on the collect origin.
(function () {
  'use strict';
  var $ = function (id) { return document.getElementById(id); };
  var chd = ChdCollect.create({ key: document.body.dataset.key, collectOrigin: document.body.dataset.collectOrigin });
  var style = {
    base: { color: '#1d2433', fontSize: '16px', fontFamily: 'DejaVu Sans, sans-serif' },
    invalid: { color: '#b3261e' }
  };

  function show(res) {
    var out = $('outcome');
    out.dataset.status = res.status;
    $('outcome-title').textContent = res.title;
    $('outcome-detail').textContent = res.detail;
    out.hidden = false;
    if (res.saved) {
      $('saved-card').textContent = label(res.saved);
      $('saved').hidden = false;
    }
  }

  function label(c) {
    var brand = c.brand ? c.brand.charAt(0).toUpperCase() + c.brand.slice(1) : '';
    return brand + ' \u2022\u2022\u2022\u2022 ' + c.last4;
  }

  // post calls the shop's backend; it answers an outcome, or {error:{code}}.
  function post(path, body) {
    return fetch(path, {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body || {})
    }).then(function (r) {
      return r.json().then(function (j) {
        if (!r.ok) {
          var e = new Error('the shop could not pay');
          e.code = (j.error && j.error.code) || 'shop_error';
          throw e;
        }
        return j;
      });
    });
  }

  function settle(res) {
    if (res.redirect) {
      window.location.assign(res.redirect); // the bank's 3-D Secure page, then back to /return
      return;
    }
    show(res);
  }

  function failed(where, button) {
    return function (e) {
      where.textContent = 'Could not pay (' + ((e && e.code) || 'error') + ').';
      button.disabled = false;
    };
  }

  if (!$('checkout').hidden) {
    var card = chd.mountCard('#card', { style: style });
    card.on('change', function () { $('card-error').textContent = ''; });
    $('pay').addEventListener('click', function () {
      $('pay').disabled = true;
      card.tokenize().then(function (t) {
        $('card-error').textContent = '';
        return post('/api/pay', { token: t.token }).then(function (res) {
          $('checkout').hidden = res.status === 'success';
          settle(res);
          $('pay').disabled = false;
        });
      }).catch(failed($('card-error'), $('pay')));
    });
  }

  $('pay-again').addEventListener('click', function () {
    $('pay-again').disabled = true;
    post('/api/saved/cvv-session').then(function (s) {
      var cvv = chd.mountCvv('#cvv', { session: s.session, style: style });
      $('cvv-box').hidden = false;
      $('pay-saved').addEventListener('click', function () {
        $('pay-saved').disabled = true;
        cvv.submit().then(function () {
          return post('/api/saved/pay').then(function (res) {
            $('cvv-box').hidden = res.status === 'success';
            settle(res);
          });
        }).catch(failed($('cvv-error'), $('pay-saved')));
      });
    }).catch(failed($('cvv-error'), $('pay-again')));
  });
})();
