/*! chdproxy collect.js 1.0.0 — hosted card fields. No dependencies. */
(function (global) {
  'use strict';
  var VERSION = '1.0.0';
  var TAG = 'chd-collect';
  var READY_TIMEOUT = 15000; // no frame at all: network or server down
  var REFUSED_GRACE = 3000; // the frame loaded but never said ready: refused by CSP
  var REQUEST_TIMEOUT = 60000;
  var script = document.currentScript;
  var scriptOrigin = script && script.src ? new URL(script.src, global.location.href).origin : null;

  function fail(code, message, extra) {
    var e = new Error(message);
    e.code = code;
    if (extra) { Object.keys(extra).forEach(function (k) { e[k] = extra[k]; }); }
    return e;
  }

  function resolveTarget(target) {
    var el = typeof target === 'string' ? document.querySelector(target) : target;
    if (!el || typeof el.appendChild !== 'function') { throw new TypeError('ChdCollect: mount target not found'); }
    return el;
  }

  // Element is one mounted frame. The page sends it commands and hears field
  // states; the card values never leave the frame.
  function Element(collectOrigin, kind, params, opts, title) {
    var self = this;
    var handlers = { ready: [], change: [], brand: [], error: [], focus: [], blur: [] };
    var pending = {};
    var nextID = 1;
    var state = 'loading'; // loading, ready, refused, destroyed
    var waiting = [];
    var loadedTimer = null;
    var iframe = document.createElement('iframe');
    var query = Object.keys(params).map(function (k) {
      return encodeURIComponent(k) + '=' + encodeURIComponent(params[k]);
    }).join('&');
    iframe.src = collectOrigin + '/collect/v1/' + kind + '?' + query;
    iframe.title = title;
    iframe.setAttribute('sandbox', 'allow-scripts allow-same-origin');
    iframe.setAttribute('allow', '');
    iframe.referrerPolicy = 'no-referrer';
    iframe.setAttribute('scrolling', 'no');
    iframe.style.border = '0';
    iframe.style.width = '100%';
    iframe.style.height = kind === 'cvv' ? '80px' : '170px';
    iframe.style.display = 'block';
    iframe.style.overflow = 'hidden';

    function emit(type, payload) {
      (handlers[type] || []).slice().forEach(function (fn) {
        try { fn(payload); } catch (e) { setTimeout(function () { throw e; }); }
      });
    }

    function refuse(code, message) {
      if (state !== 'loading') { return; }
      state = 'refused';
      var err = fail(code, message);
      waiting.splice(0).forEach(function (w) { w.reject(err); });
      emit('error', { code: code, message: message });
    }

    function onMessage(ev) {
      if (ev.origin !== collectOrigin || ev.source !== iframe.contentWindow) { return; }
      var m = ev.data;
      if (!m || m.chd !== TAG || typeof m.type !== 'string' || state === 'destroyed') { return; }
      switch (m.type) {
        case 'ready':
          if (state !== 'loading') { return; }
          state = 'ready';
          clearTimeout(loadedTimer);
          if (opts.style) { send({ type: 'style', style: opts.style }); }
          waiting.splice(0).forEach(function (w) { w.resolve(); });
          emit('ready', {});
          break;
        case 'change':
          emit('change', m.state);
          break;
        case 'brand':
          emit('brand', { brand: m.brand });
          break;
        case 'focus':
        case 'blur':
          emit(m.type, { field: m.field });
          break;
        case 'resize':
          if (typeof m.height === 'number' && m.height > 0 && m.height < 2000) { iframe.style.height = m.height + 'px'; }
          break;
        case 'result':
          var p = pending[m.id];
          if (!p) { return; }
          delete pending[m.id];
          clearTimeout(p.timer);
          if (m.ok) { p.resolve(m.value); } else {
            var e = m.error || {};
            var extra = e.fields ? { fields: e.fields } : null;
            p.reject(fail(String(e.code || 'error'), String(e.message || 'request refused'), extra));
          }
          break;
      }
    }

    function send(msg) {
      msg.chd = TAG;
      iframe.contentWindow.postMessage(msg, collectOrigin);
    }

    function whenReady() {
      if (state === 'ready') { return Promise.resolve(); }
      if (state === 'refused') { return Promise.reject(fail('origin_not_allowed', 'the card fields could not be loaded on this page')); }
      if (state === 'destroyed') { return Promise.reject(fail('destroyed', 'the fields were destroyed')); }
      return new Promise(function (resolve, reject) { waiting.push({ resolve: resolve, reject: reject }); });
    }

    function command(type) {
      return whenReady().then(function () {
        return new Promise(function (resolve, reject) {
          var id = nextID++;
          pending[id] = {
            resolve: resolve, reject: reject,
            timer: setTimeout(function () { delete pending[id]; reject(fail('timeout', 'no answer from the card fields')); }, REQUEST_TIMEOUT)
          };
          send({ type: type, id: id });
        });
      });
    }

    global.addEventListener('message', onMessage);
    iframe.addEventListener('load', function () {
      // A frame refused by frame-ancestors still fires load, and never says ready.
      loadedTimer = setTimeout(function () {
        refuse('origin_not_allowed', 'the card fields could not be loaded: this page\'s origin is not registered for the key, or the key is not valid');
      }, REFUSED_GRACE);
    });
    setTimeout(function () { refuse('frame_unavailable', 'the card fields did not load'); }, READY_TIMEOUT);

    this.on = function (type, fn) {
      if (!handlers[type]) { throw new TypeError('ChdCollect: unknown event ' + type); }
      if (typeof fn !== 'function') { throw new TypeError('ChdCollect: handler must be a function'); }
      handlers[type].push(fn);
      return self;
    };
    this.off = function (type, fn) {
      if (handlers[type]) { handlers[type] = handlers[type].filter(function (h) { return h !== fn; }); }
      return self;
    };
    this.focus = function (field) {
      whenReady().then(function () { send({ type: 'focus', field: field || (kind === 'cvv' ? 'cvv' : 'number') }); }, function () {});
    };
    this.update = function (o) {
      if (o && o.style) { opts.style = o.style; whenReady().then(function () { send({ type: 'style', style: o.style }); }, function () {}); }
    };
    this.destroy = function () {
      if (state === 'destroyed') { return; }
      state = 'destroyed';
      global.removeEventListener('message', onMessage);
      clearTimeout(loadedTimer);
      var err = fail('destroyed', 'the fields were destroyed');
      waiting.splice(0).forEach(function (w) { w.reject(err); });
      Object.keys(pending).forEach(function (id) { clearTimeout(pending[id].timer); pending[id].reject(err); delete pending[id]; });
      if (iframe.parentNode) { iframe.parentNode.removeChild(iframe); }
    };
    this._command = command;
    this._mount = function (target) { resolveTarget(target).appendChild(iframe); };
  }

  function create(options) {
    var o = options || {};
    if (typeof o.key !== 'string' || !/^pk_[A-Za-z0-9_]+$/.test(o.key)) { throw new TypeError('ChdCollect: key must be a publishable key (pk_…)'); }
    var base = o.collectOrigin || scriptOrigin;
    if (!base) { throw new TypeError('ChdCollect: collectOrigin is required when collect.js is not loaded from a URL'); }
    var collectOrigin = new URL(base).origin;
    var pageOrigin = global.location.origin;

    function mountCard(target, opts) {
      var mo = opts || {};
      var params = { key: o.key, origin: pageOrigin };
      if (mo.fields) {
        if (!Array.isArray(mo.fields)) { throw new TypeError('ChdCollect: fields must be an array'); }
        params.fields = mo.fields.join(',');
      }
      var el = new Element(collectOrigin, 'card', params, { style: mo.style }, 'Secure card payment input');
      el._mount(target);
      el.tokenize = function () { return el._command('tokenize'); };
      delete el._mount;
      return el;
    }

    function mountCvv(target, opts) {
      var mo = opts || {};
      if (typeof mo.session !== 'string' || !/^cvs_[A-Z2-7]{26}$/.test(mo.session)) { throw new TypeError('ChdCollect: session must be a CVV session id (cvs_…)'); }
      var el = new Element(collectOrigin, 'cvv', { key: o.key, origin: pageOrigin, session: mo.session }, { style: mo.style }, 'Secure card security code input');
      el._mount(target);
      el.submit = function () { return el._command('submit'); };
      delete el._mount;
      return el;
    }

    return Object.freeze({ mountCard: mountCard, mountCvv: mountCvv, collectOrigin: collectOrigin });
  }

  global.ChdCollect = Object.freeze({ version: VERSION, create: create });
})(window);
