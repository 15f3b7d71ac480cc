// Darkroom's small behaviours. No inline scripts: the pages run under a strict CSP, so
// everything is wired here by delegated listeners that also cover htmx-swapped markup.
(function () {
  "use strict";

  // Lets CSS hide what only matters without JavaScript (e.g. the filters' Apply button).
  document.documentElement.classList.add("js");

  function typing(target) {
    return target.closest("input, textarea, select, [contenteditable]");
  }

  // Ctrl+Enter / Cmd+Enter submits the generate form from anywhere inside it.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
    var form = event.target.closest && event.target.closest("form[data-submit-shortcut]");
    if (!form) return;
    event.preventDefault();
    form.requestSubmit();
  });

  // On a detail page the arrow keys step to the newer / older image.
  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey || typing(event.target)) return;
    var rel = { ArrowLeft: "prev", ArrowRight: "next" }[event.key];
    var link = rel && document.querySelector('a[rel="' + rel + '"]');
    if (link) link.click();
  });

  // Copy buttons: data-copy names the element whose text (or a field's value) is copied.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.getElementById(button.dataset.copy);
    if (!source) return;
    var field = source.matches("input, textarea");
    // A field stays selected: if copying fails, Ctrl+C / Cmd+C still works.
    if (field) source.select();
    copyText(field ? source.value : source.textContent).then(function () {
      var label = button.textContent;
      button.textContent = button.dataset.copiedLabel || "Copied";
      button.classList.add("is-done");
      setTimeout(function () {
        button.textContent = label;
        button.classList.remove("is-done");
      }, 1600);
    }, function () {});
  });

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain http on a LAN address has no clipboard API: fall back to a selection.
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.appendChild(area);
    area.select();
    var copied = document.execCommand("copy");
    area.remove();
    return copied ? Promise.resolve() : Promise.reject();
  }

  // An open delete confirmation closes on Escape or a click elsewhere.
  function closeConfirmations(except) {
    document.querySelectorAll("details.confirm[open]").forEach(function (details) {
      if (details !== except) details.removeAttribute("open");
    });
  }
  document.addEventListener("click", function (event) {
    closeConfirmations(event.target.closest("details.confirm"));
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") closeConfirmations(null);
  });

  // "Use these settings" swaps the form in: bring it into view, ready to edit the prompt.
  document.addEventListener("htmx:afterSettle", function (event) {
    var trigger = event.detail.requestConfig && event.detail.requestConfig.elt;
    if (!trigger || !trigger.matches("[data-use-settings]")) return;
    var form = document.getElementById("generate-form");
    var prompt = form && form.querySelector("textarea");
    if (!prompt) return;
    form.scrollIntoView({ block: "start", behavior: "smooth" });
    prompt.focus({ preventScroll: true });
    prompt.setSelectionRange(prompt.value.length, prompt.value.length);
    form.classList.remove("is-filled");
    void form.offsetWidth; // restart the highlight animation
    form.classList.add("is-filled");
  });

  // -- live updates: one request per page, whatever the number of cards --------------------
  // #live-updates (in the studio's gallery partial) asks for all the page's cards at once:
  // each unfinished one with the version it shows (w=<pk>:<version>), and the cards that
  // arrived since the page was rendered (k=<pk>, newer than data-anchor), so the answer
  // holds only what changed, out of band, or is a 204. While a card is unfinished it asks
  // just after the pipeline's next step can have landed (the answer's Darkroom-Next-In,
  // plus data-step-ms), never sooner than data-step-ms (doubling while answers bring
  // nothing) nor later than data-max-ms; with none unfinished, every data-idle-ms (0: not
  // at all, nobody else adds to this view); at most every HIDDEN_MS while the tab is
  // hidden; and it backs off after failures, and after answers that are not updates (the
  // sign-in page, once the session has ended). Cards added later (Generate, "load more")
  // are found on the page: they join.
  var HIDDEN_MS = 10000;
  var MAX_BACKOFF_MS = 60000;
  var live = { timer: null, due: 0, failures: 0, quiet: 0, nextIn: null, stopped: false };

  function liveElement() {
    return document.getElementById("live-updates");
  }

  function timing(element, name) {
    return Number(element.dataset[name]) || 0;
  }

  function parseNextIn(value) {
    return value === null || value === undefined || value === "" ? null : Number(value);
  }

  function liveDelay(element) {
    if (live.stopped) return 0;
    var ms;
    if (document.querySelector("#generation-grid .card[data-version]")) {
      var max = timing(element, "maxMs");
      var step = timing(element, "stepMs");
      if (live.nextIn) {
        ms = Math.min(live.nextIn + step, max); // just after the next step lands
      } else {
        // A step under way (or no telling): soon, then less often while nothing changes.
        ms = Math.min(step * Math.pow(2, Math.min(live.quiet, 3)), max);
      }
    } else {
      ms = timing(element, "idleMs");
      if (!ms) return 0;
    }
    if (document.hidden) ms = Math.max(ms, HIDDEN_MS);
    if (live.failures) ms = Math.min(Math.max(ms, 1000) * Math.pow(2, live.failures), MAX_BACKOFF_MS);
    return ms;
  }

  function tick() {
    live.timer = null;
    var element = liveElement();
    if (element) htmx.trigger(element, "darkroom:tick");
  }

  // Asks at the time liveDelay gives, unless a request is already due sooner.
  function scheduleLive() {
    var element = liveElement();
    var ms = element ? liveDelay(element) : 0;
    if (!ms) {
      clearTimeout(live.timer);
      live.timer = null;
      return;
    }
    var due = Date.now() + ms;
    if (live.timer && live.due <= due) return;
    clearTimeout(live.timer);
    live.due = due;
    live.timer = setTimeout(tick, ms);
  }

  // Whether an htmx event belongs to the live-update request (detail.elt is the element an
  // event fires on: a swapped card for afterSettle; requestConfig.elt made the request).
  function fromLiveUpdates(event) {
    var detail = event.detail || {};
    var element = (detail.requestConfig || {}).elt || detail.elt;
    return !!element && element.id === "live-updates";
  }

  document.addEventListener("htmx:configRequest", function (event) {
    var element = event.detail.elt;
    if (element.id !== "live-updates") return;
    var anchor = Number(element.dataset.anchor) || 0;
    var watched = [];
    var known = [];
    document.querySelectorAll("#generation-grid .card").forEach(function (card) {
      var pk = card.id.replace("generation-", "");
      if (card.dataset.version) watched.push(pk + ":" + card.dataset.version);
      else if (Number(pk) > anchor) known.push(pk);
    });
    event.detail.parameters.w = watched;
    event.detail.parameters.k = known;
    event.detail.parameters.anchor = anchor;
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    if (!fromLiveUpdates(event)) return;
    var xhr = event.detail.xhr;
    var status = xhr ? xhr.status : 0;
    var header = xhr ? xhr.getResponseHeader("Darkroom-Next-In") : null;
    // 404: the page's view is gone; asking again can't help.
    live.stopped = status === 404;
    var answered = event.detail.successful && header !== null;
    live.failures = answered ? 0 : Math.min(live.failures + 1, 6);
    live.quiet = status === 204 ? live.quiet + 1 : 0;
    live.nextIn = parseNextIn(header);
    dropDuplicateCards();
    clearTimeout(live.timer); // this answer decides when to ask next
    live.timer = null;
    scheduleLive();
  });

  // Anything else that swapped cards in (Generate, "load more", a filter, Retry) may start
  // it, or bring it forward: a new card is submitted at once.
  document.addEventListener("htmx:afterSettle", function (event) {
    if (fromLiveUpdates(event)) return;
    dropDuplicateCards();
    var element = liveElement();
    if (event.detail && event.detail.target && event.detail.target.id === "gallery" && element) {
      live.nextIn = parseNextIn(element.dataset.nextIn); // a new view: its own timing
    } else {
      live.nextIn = 0;
    }
    live.quiet = 0;
    scheduleLive();
  });

  document.addEventListener("visibilitychange", function () {
    var element = liveElement();
    if (document.hidden || !element || !liveDelay(element)) return;
    clearTimeout(live.timer); // back in view: catch up now, then at the usual pace
    tick();
  });

  function startLive() {
    var element = liveElement();
    live.nextIn = element ? parseNextIn(element.dataset.nextIn) : null;
    scheduleLive();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", startLive);
  } else {
    startLive();
  }

  // A card the Generate answer and an update both brought (they crossed): keep the first.
  function dropDuplicateCards() {
    var seen = {};
    document.querySelectorAll("#generation-grid > .card").forEach(function (card) {
      if (seen[card.id]) card.remove();
      else seen[card.id] = true;
    });
  }

  // A card is replaced whenever it changes, so it can't be its own live region: the page's
  // #announcer says when a card's status changes ("Completed: a fox in the snow").
  function announce(card, next) {
    var announcer = document.getElementById("announcer");
    if (!announcer || !next || !card.matches(".card[data-status]")) return;
    if (next.dataset.status === card.dataset.status) return;
    var badge = next.querySelector(".badge");
    var prompt = next.querySelector(".card__prompt");
    announcer.textContent = (badge ? badge.textContent.trim() : next.dataset.status) +
      ": " + (prompt ? prompt.textContent.trim() : "");
  }

  // Cards changed by the live update arrive out of band...
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var fragment = event.detail.fragment;
    var next = fragment && fragment.querySelector && fragment.querySelector(".card[data-status]");
    announce(event.detail.target, next);
  });

  // ...and those changed by a button on them (Retry, Cancel) replace themselves.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var html = event.detail.xhr.responseText;
    if (!html || !event.detail.target.matches(".card[data-status]")) return;
    var next = new DOMParser().parseFromString(html, "text/html").querySelector(".card[data-status]");
    announce(event.detail.target, next);
  });
})();
