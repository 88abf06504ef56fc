// chdproxy field frame. CHD_BRANDS (above) is generated from package card's table.
// Card values stay in this frame: the parent page gets field states and, after
// tokenize, the token and its metadata. Messages go to, and come from, only the
// origin this frame was loaded for.
(function () {
  'use strict';
  var root = document.documentElement;
  var MODE = root.dataset.mode;
  var KEY = root.dataset.key;
  var ORIGIN = root.dataset.origin;
  var SESSION = root.dataset.session;
  var TAG = 'chd-collect';
  var FIELDS = ['number', 'expiry', 'cvv', 'holder'];
  var MESSAGES = {
    incomplete_card_number: 'Your card number is incomplete.',
    invalid_card_number: 'Your card number is not valid.',
    invalid_card_length: 'Your card number is not valid.',
    invalid_card_checksum: 'Your card number is not valid.',
    unsupported_card_brand: 'This card brand is not supported.',
    incomplete_expiry: 'Your expiry date is incomplete.',
    invalid_exp_month: 'The expiry month is not valid.',
    invalid_exp_year: 'The expiry year is not valid.',
    card_expired: 'Your card has expired.',
    incomplete_cvv: 'Your security code is incomplete.',
    invalid_cvv: 'Your security code is not valid.',
    invalid_card_holder: 'Enter the name on the card.',
    busy: 'Please wait.',
    network_error: 'The card could not be sent. Check your connection and try again.'
  };

  var inputs = {};
  var touched = {};
  FIELDS.forEach(function (f) {
    var el = document.getElementById(f);
    if (el) { inputs[f] = el; }
  });
  var busy = false;
  var lastBrand;

  function post(msg) {
    msg.chd = TAG;
    window.parent.postMessage(msg, ORIGIN);
  }

  // framedByOrigin: loaded in a frame whose parent is ORIGIN (ancestorOrigins where
  // the browser has it; CSP frame-ancestors already refused any other embedder).
  function framedByOrigin() {
    if (window.parent === window) { return false; }
    var ao = window.location.ancestorOrigins;
    return !ao || (ao.length > 0 && ao[0] === ORIGIN);
  }

  function digits(s) { return s.replace(/\D/g, ''); }

  // brandOf: the brand of a number, also while it is typed: the first range of the
  // table the digits so far can still fall in decides it, unless another brand's can
  // too (then null until more digits come). From 6 digits on, null means unsupported.
  function brandOf(num) {
    if (!num) { return null; }
    var cand = null;
    for (var i = 0; i < CHD_BRANDS.length; i++) {
      var r = CHD_BRANDS[i];
      var n = Math.min(r.lo.length, num.length);
      var p = num.slice(0, n);
      if (p < r.lo.slice(0, n) || p > r.hi.slice(0, n)) { continue; }
      if (cand && cand.brand !== r.brand) { return null; }
      if (r.lo.length <= num.length) { return cand || r; }
      cand = cand || r;
    }
    return cand;
  }

  function luhn(num) {
    var sum = 0;
    for (var i = 0; i < num.length; i++) {
      var d = num.charCodeAt(num.length - 1 - i) - 48;
      if (i % 2 === 1) { d *= 2; if (d > 9) { d -= 9; } }
      sum += d;
    }
    return sum % 10 === 0;
  }

  function maxLen(b) { return b ? b.lengths[b.lengths.length - 1] : 19; }

  function group(num, b) {
    var gaps = b ? b.gaps : [4, 4, 4, 4];
    var out = [];
    var i = 0;
    for (var g = 0; i < num.length; g++) {
      var size = g < gaps.length ? gaps[g] : 4;
      out.push(num.slice(i, i + size));
      i += size;
    }
    return out.join(' ');
  }

  function cvvLen() {
    if (MODE === 'cvv') { return null; } // the server checks it against the card's brand
    var b = brandOf(digits(inputs.number.value));
    return b ? b.cvv : 3;
  }

  // check returns the field's state: {valid, empty, error, complete}. error is a code,
  // never a value; incomplete input is an error only once the field was left.
  function checkNumber() {
    var num = digits(inputs.number.value);
    if (!num) { return { valid: false, empty: true, error: null }; }
    var b = brandOf(num);
    if (num.length >= 6 && !b) { return { valid: false, empty: false, error: 'unsupported_card_brand', hard: true }; }
    if (b && b.lengths.indexOf(num.length) >= 0 && luhn(num)) { return { valid: true, empty: false, error: null }; }
    if (num.length >= maxLen(b)) {
      var code = b && b.lengths.indexOf(num.length) >= 0 ? 'invalid_card_checksum' : 'invalid_card_length';
      return { valid: false, empty: false, error: code, hard: true };
    }
    return { valid: false, empty: false, error: 'incomplete_card_number' };
  }

  function checkExpiry() {
    var v = digits(inputs.expiry.value);
    if (!v) { return { valid: false, empty: true, error: null }; }
    if (v.length < 4) { return { valid: false, empty: false, error: 'incomplete_expiry' }; }
    var m = parseInt(v.slice(0, 2), 10);
    var y = 2000 + parseInt(v.slice(2, 4), 10);
    if (m < 1 || m > 12) { return { valid: false, empty: false, error: 'invalid_exp_month', hard: true }; }
    var now = new Date();
    if (y > now.getFullYear() + 20) { return { valid: false, empty: false, error: 'invalid_exp_year', hard: true }; }
    if (y < now.getFullYear() || (y === now.getFullYear() && m < now.getMonth() + 1)) {
      return { valid: false, empty: false, error: 'card_expired', hard: true };
    }
    return { valid: true, empty: false, error: null };
  }

  function checkCVV() {
    var v = digits(inputs.cvv.value);
    if (!v) { return { valid: false, empty: true, error: null }; }
    var want = cvvLen();
    if (want === null ? (v.length === 3 || v.length === 4) : v.length === want) {
      return { valid: true, empty: false, error: null };
    }
    if (want !== null && v.length > want) { return { valid: false, empty: false, error: 'invalid_cvv', hard: true }; }
    return { valid: false, empty: false, error: 'incomplete_cvv' };
  }

  function checkHolder() {
    var v = inputs.holder.value.trim();
    if (!v) { return { valid: false, empty: true, error: null }; }
    // Letters, marks, spaces and ' ’ - . as the collect API accepts; no digits.
    var ok = /^[\p{L}\p{M}\p{Zs}'\u2019.-]+$/u.test(v) && /\p{L}/u.test(v) && v.length <= 64;
    return ok ? { valid: true, empty: false, error: null } : { valid: false, empty: false, error: 'invalid_card_holder', hard: true };
  }

  var CHECKS = { number: checkNumber, expiry: checkExpiry, cvv: checkCVV, holder: checkHolder };

  function required(f, st) {
    if (!st.empty || !touched[f]) { return st; }
    var code = { number: 'incomplete_card_number', expiry: 'incomplete_expiry', cvv: 'incomplete_cvv', holder: 'invalid_card_holder' }[f];
    return { valid: false, empty: true, error: code };
  }

  function states() {
    var out = {};
    Object.keys(inputs).forEach(function (f) { out[f] = required(f, CHECKS[f]()); });
    return out;
  }

  function render(st) {
    Object.keys(inputs).forEach(function (f) {
      var s = st[f];
      var show = s.error && (touched[f] || s.hard) ? s.error : null;
      inputs[f].setAttribute('aria-invalid', show ? 'true' : 'false');
      document.getElementById(f + '-error').textContent = show ? (MESSAGES[show] || MESSAGES.invalid_card_number) : '';
      applyStyle(inputs[f], show ? 'invalid' : 'base');
    });
    resize();
  }

  function summary(st) {
    var fields = {};
    var complete = true;
    var empty = true;
    Object.keys(st).forEach(function (f) {
      var s = st[f];
      var shown = s.error && (touched[f] || s.hard) ? s.error : undefined;
      fields[f] = shown ? { valid: s.valid, empty: s.empty, error: shown } : { valid: s.valid, empty: s.empty };
      complete = complete && s.valid;
      empty = empty && s.empty;
    });
    var b = inputs.number ? brandOf(digits(inputs.number.value)) : null;
    return { complete: complete, empty: empty, brand: b ? b.brand : null, fields: fields };
  }

  function update() {
    var st = states();
    render(st);
    var sum = summary(st);
    post({ type: 'change', state: sum });
    if (sum.brand !== lastBrand) {
      lastBrand = sum.brand;
      post({ type: 'brand', brand: sum.brand });
    }
  }

  function formatNumber() {
    var el = inputs.number;
    var num = digits(el.value);
    var b = brandOf(num);
    num = num.slice(0, maxLen(b));
    var atEnd = el.selectionStart === el.value.length;
    el.value = group(num, b);
    if (atEnd) { el.setSelectionRange(el.value.length, el.value.length); }
  }

  function formatExpiry(ev) {
    var el = inputs.expiry;
    // Autofill may give "MM/YYYY": keep the month and the year's last two digits.
    var full = /^\s*(\d{1,2})\s*[/-]\s*(\d{4})\s*$/.exec(el.value);
    var v = full ? (full[1].length === 1 ? '0' : '') + full[1] + full[2].slice(2) : digits(el.value);
    if (v.length === 1 && v > '1') { v = '0' + v; }
    v = v.slice(0, 4);
    var deleting = ev && ev.inputType && ev.inputType.indexOf('delete') === 0;
    if (v.length > 2 || (v.length === 2 && !deleting)) {
      el.value = v.slice(0, 2) + ' / ' + v.slice(2);
    } else {
      el.value = v;
    }
  }

  var STYLE_PROPS = ['color', 'font-family', 'font-size', 'font-weight', 'font-style', 'font-variant', 'line-height',
    'letter-spacing', 'text-align', 'text-transform', 'padding', 'background-color', 'border', 'border-color',
    'border-width', 'border-style', 'border-radius', 'caret-color', 'height', 'box-shadow', 'outline'];
  var styles = { base: {}, invalid: {} };

  // setStyle keeps the whitelisted properties with plain values: no url(), no
  // expressions, nothing that loads or escapes the declaration.
  function setStyle(s) {
    ['base', 'invalid'].forEach(function (part) {
      var src = s && typeof s[part] === 'object' ? s[part] : {};
      var out = {};
      Object.keys(src).forEach(function (k) {
        var prop = k.replace(/[A-Z]/g, function (c) { return '-' + c.toLowerCase(); });
        var v = src[k];
        if (STYLE_PROPS.indexOf(prop) >= 0 && (typeof v === 'string' || typeof v === 'number') &&
          String(v).length <= 100 && !/[;{}<>\\]|url\(|expression|@import/i.test(String(v))) {
          out[prop] = String(v);
        }
      });
      styles[part] = out;
    });
    if (styles.base['font-family']) { document.body.style.setProperty('font-family', styles.base['font-family']); }
    if (styles.base.color) { document.body.style.setProperty('color', styles.base.color); }
    render(states());
  }

  function applyStyle(el, which) {
    STYLE_PROPS.forEach(function (p) { el.style.removeProperty(p); });
    var base = styles.base;
    Object.keys(base).forEach(function (p) { el.style.setProperty(p, base[p]); });
    if (which === 'invalid') {
      Object.keys(styles.invalid).forEach(function (p) { el.style.setProperty(p, styles.invalid[p]); });
    }
  }

  var lastHeight = 0;
  function resize() {
    var h = Math.ceil(document.documentElement.getBoundingClientRect().height);
    if (h !== lastHeight) {
      lastHeight = h;
      post({ type: 'resize', height: h });
    }
  }

  function fieldOf(code) {
    if (/card_number|card_length|card_checksum|card_brand|raw_card/.test(code)) { return 'number'; }
    if (/exp|expired/.test(code)) { return 'expiry'; }
    if (/cvv/.test(code)) { return 'cvv'; }
    if (/holder/.test(code)) { return 'holder'; }
    return null;
  }

  function showServerError(code, message) {
    var f = fieldOf(code);
    var el = document.getElementById(f && inputs[f] ? f + '-error' : 'form-error');
    el.textContent = MESSAGES[code] || message || 'The card could not be used.';
    if (f && inputs[f]) { inputs[f].setAttribute('aria-invalid', 'true'); applyStyle(inputs[f], 'invalid'); }
    resize();
  }

  function reply(id, ok, value) {
    post(ok ? { type: 'result', id: id, ok: true, value: value } : { type: 'result', id: id, ok: false, error: value });
  }

  // validAll marks every field as left and reports whether all are valid.
  function validAll() {
    Object.keys(inputs).forEach(function (f) { touched[f] = true; });
    var st = states();
    render(st);
    post({ type: 'change', state: summary(st) });
    return Object.keys(st).every(function (f) { return st[f].valid; });
  }

  function send(path, body) {
    return fetch(path, {
      method: 'POST', mode: 'same-origin', credentials: 'omit', cache: 'no-store', referrerPolicy: 'no-referrer',
      headers: { 'Authorization': 'Bearer ' + KEY, 'Content-Type': 'application/json' },
      body: JSON.stringify(body)
    }).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (b) { return { status: resp.status, body: b }; });
    });
  }

  function cardBody() {
    var exp = digits(inputs.expiry.value);
    var body = { card_number: digits(inputs.number.value), card_exp_month: exp.slice(0, 2), card_exp_year: exp.slice(2, 4) };
    if (inputs.cvv) { body.card_cvv = digits(inputs.cvv.value); }
    if (inputs.holder) { body.card_holder = inputs.holder.value.trim(); }
    return body;
  }

  function run(id, path, body, ok, result) {
    busy = true;
    document.getElementById('form-error').textContent = '';
    send(path, body).then(function (r) {
      busy = false;
      if (r.status === ok && r.body && r.body.token) {
        reply(id, true, result(r.body));
        return;
      }
      var e = (r.body && r.body.error) || {};
      var code = typeof e.code === 'string' ? e.code : 'http_' + r.status;
      showServerError(code, typeof e.message === 'string' ? e.message : '');
      reply(id, false, { code: code, message: typeof e.message === 'string' ? e.message : 'request refused' });
    }, function () {
      busy = false;
      showServerError('network_error');
      reply(id, false, { code: 'network_error', message: 'the request could not be sent' });
    });
  }

  function tokenize(id) {
    run(id, '/v1/tokens', cardBody(), 201, function (b) {
      var c = b.card || {};
      return { token: b.token, card: { brand: c.brand, bin: c.bin, last4: c.last4, exp_month: c.exp_month, exp_year: c.exp_year } };
    });
  }

  function submitCVV(id) {
    run(id, '/v1/cvv', { session: SESSION, cvv: digits(inputs.cvv.value) }, 200, function (b) {
      return { token: b.token, cvv: 'attached' };
    });
  }

  function onCommand(ev) {
    if (ev.origin !== ORIGIN || ev.source !== window.parent) { return; }
    var m = ev.data;
    if (!m || m.chd !== TAG || typeof m.type !== 'string') { return; }
    switch (m.type) {
      case 'style':
        setStyle(m.style);
        break;
      case 'focus':
        if (inputs[m.field]) { inputs[m.field].focus(); }
        break;
      case 'tokenize':
      case 'submit':
        if ((m.type === 'tokenize') !== (MODE === 'card')) {
          reply(m.id, false, { code: 'wrong_frame', message: 'this frame does not do ' + m.type });
        } else if (busy) {
          reply(m.id, false, { code: 'busy', message: 'a request is already running' });
        } else if (!validAll()) {
          reply(m.id, false, { code: 'invalid_input', message: 'some fields are not valid', fields: summary(states()).fields });
        } else if (MODE === 'card') {
          tokenize(m.id);
        } else {
          submitCVV(m.id);
        }
        break;
    }
  }

  function start() {
    if (!framedByOrigin()) {
      document.getElementById('form-error').textContent = 'This card form only works inside the merchant\'s page.';
      return; // inputs stay disabled; nothing is posted anywhere
    }
    window.addEventListener('message', onCommand);
    document.getElementById('form').addEventListener('submit', function (e) { e.preventDefault(); });
    Object.keys(inputs).forEach(function (f) {
      var el = inputs[f];
      el.disabled = false;
      el.addEventListener('input', function (e) {
        if (f === 'number') { formatNumber(); }
        if (f === 'expiry') { formatExpiry(e); }
        if (f === 'cvv') { el.value = digits(el.value).slice(0, cvvLen() || 4); }
        update();
      });
      el.addEventListener('blur', function () {
        touched[f] = touched[f] || el.value !== '';
        update();
        post({ type: 'blur', field: f });
      });
      el.addEventListener('focus', function () { post({ type: 'focus', field: f }); });
    });
    render(states());
    post({ type: 'ready', mode: MODE, fields: Object.keys(inputs) });
    post({ type: 'change', state: summary(states()) });
    if (typeof ResizeObserver === 'function') { new ResizeObserver(resize).observe(document.body); }
  }

  start();
})();
