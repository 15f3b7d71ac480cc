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

  // -- live updates: one request per page, held by the server until something changes -----
  // #live-updates (in the studio's gallery partial) asks for all the page's cards at once:
  // each unfinished one with the version it shows (w=<pk>:<version>), and the cards that
  // arrived since the page was rendered (k=<pk>, newer than data-anchor), so the answer
  // holds only what changed, out of band. The server holds the request until something
  // changed (or about 20 s, then a 204), so the page asks again as soon as an answer comes,
  // but never sooner than data-min-gap-ms after its last request began (data-hidden-gap-ms
  // while the tab is hidden), nor sooner than a Retry-After says. It asks while a card is
  // unfinished, or always on a gallery others add to (data-others-add); it backs off after
  // failures, and after answers that are not updates (the sign-in page, once the session
  // ended). When the page's cards change otherwise (Generate, "load more", Retry), the
  // server is asked to let the request under way go (by the page's id, p), and the next
  // one names them.
  var live = {
    timer: null, started: 0, failures: 0, notBefore: 0, request: null, stopped: false,
    named: [], page: Math.random().toString(36).slice(2, 12),
  };

  function liveElement() {
    return document.getElementById("live-updates");
  }

  function timing(element, name) {
    return Number(element.dataset[name]) || 0;
  }

  function wanted(element) {
    if (live.stopped || !element) return false;
    return !!document.querySelector("#generation-grid .card[data-version]") ||
      element.hasAttribute("data-others-add");
  }

  function tick() {
    live.timer = null;
    var element = liveElement();
    if (!wanted(element) || live.request) return;
    live.started = Date.now();
    htmx.trigger(element, "darkroom:tick");
  }

  // Asks again as soon as it may: not while a request is under way, never sooner than the
  // gap after the last one began, nor than a failure's backoff or a Retry-After allow.
  function scheduleLive() {
    clearTimeout(live.timer);
    live.timer = null;
    var element = liveElement();
    if (!wanted(element) || live.request) return;
    var gap = timing(element, document.hidden ? "hiddenGapMs" : "minGapMs");
    var due = Math.max(live.started + gap, live.notBefore);
    if (live.failures) {
      var backoff = timing(element, "failureMs") * Math.pow(2, live.failures - 1);
      due = Math.max(due, Date.now() + Math.min(backoff, timing(element, "maxBackoffMs")));
    }
    live.timer = setTimeout(tick, Math.max(0, due - Date.now()));
  }

  // Whether an htmx event belongs to the live-update request (detail.elt is the element an
  // event fires on: a swapped card for afterSettle; requestConfig.elt made the request).
  function fromLiveUpdates(event) {
    var detail = event.detail || {};
    var element = (detail.requestConfig || {}).elt || detail.elt;
    return !!element && element.id === "live-updates";
  }

  // What the page shows that can change: its unfinished cards with their versions, and
  // the cards it received since it was rendered.
  function pageCards(anchor) {
    var watched = [];
    var known = [];
    document.querySelectorAll("#generation-grid .card").forEach(function (card) {
      var pk = card.id.replace("generation-", "");
      if (card.dataset.version) watched.push(pk + ":" + card.dataset.version);
      else if (Number(pk) > anchor) known.push(pk);
    });
    return { watched: watched, known: known };
  }

  document.addEventListener("htmx:configRequest", function (event) {
    var element = event.detail.elt;
    if (element.id !== "live-updates") return;
    var anchor = Number(element.dataset.anchor) || 0;
    var cards = pageCards(anchor);
    live.named = cards.watched;
    event.detail.parameters.w = cards.watched;
    event.detail.parameters.k = cards.known;
    event.detail.parameters.anchor = anchor;
    event.detail.parameters.p = live.page;
  });

  document.addEventListener("htmx:beforeSend", function (event) {
    if (fromLiveUpdates(event)) live.request = event.detail.xhr;
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    if (!fromLiveUpdates(event)) return;
    var xhr = event.detail.xhr;
    live.request = null;
    var status = xhr ? xhr.status : 0;
    // 404: the page's view is gone; asking again can't help.
    live.stopped = status === 404;
    var answered = event.detail.successful && xhr.getResponseHeader("Darkroom-Live") !== null;
    live.failures = answered ? 0 : Math.min(live.failures + 1, 7);
    var retryAfter = Number(xhr && xhr.getResponseHeader("Retry-After")) || 0;
    live.notBefore = Date.now() + retryAfter * 1000;
    dropDuplicateCards();
    scheduleLive();
  });

  // Anything else that swapped cards in (Generate, "load more", a filter, Retry) may give
  // the page a card to watch that the request under way does not name: the server lets
  // that request go (release, by the page's id), and the next one names it.
  document.addEventListener("htmx:afterSettle", function (event) {
    if (fromLiveUpdates(event)) return;
    dropDuplicateCards();
    var element = liveElement();
    if (!element) return;
    if (!live.request) {
      scheduleLive();
      return;
    }
    var unnamed = pageCards(Number(element.dataset.anchor) || 0).watched.filter(function (card) {
      return live.named.indexOf(card) < 0;
    });
    if (unnamed.length) {
      var url = new URL(element.getAttribute("hx-get"), window.location.href);
      url.search = "release=1&p=" + encodeURIComponent(live.page);
      fetch(url, { credentials: "same-origin", headers: { "HX-Request": "true" } })
        .catch(function () {});
    }
  });

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) scheduleLive(); // back in view: at the usual pace again
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", scheduleLive);
  } else {
    scheduleLive();
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

  // -- select many: a checkbox on each card, the bar that acts on them (_bulk_bar.html) -----
  // The checkboxes belong to #bulk-form wherever the cards are. Shift-click ticks (or
  // unticks) the range from the last one clicked; Escape clears; the selection outlives a
  // card being swapped in again (a live update, a star) until the bar's action is done.
  var selection = { ids: new Set(), last: null };

  function boxes() {
    return Array.prototype.slice.call(document.querySelectorAll("#generation-grid input[data-select]"));
  }

  function showSelection() {
    var bar = document.getElementById("bulk-form");
    boxes().forEach(function (box) { box.checked = selection.ids.has(box.value); });
    var count = selection.ids.size;
    if (bar) {
      bar.classList.toggle("is-active", count > 0);
      var output = bar.querySelector("[data-bulk-count]");
      if (output) output.textContent = String(count);
    }
    var gallery = document.getElementById("gallery");
    if (gallery) gallery.classList.toggle("is-selecting", count > 0);
  }

  function choose(box, on) {
    if (on) selection.ids.add(box.value);
    else selection.ids.delete(box.value);
  }

  // Space on a focused checkbox is a click too: Shift+Space ticks a range as Shift-click does.
  document.addEventListener("click", function (event) {
    var box = event.target.closest && event.target.closest("input[data-select]");
    if (!box) return;
    if (event.shiftKey && selection.last && selection.last !== box && document.contains(selection.last)) {
      var all = boxes();
      var from = all.indexOf(selection.last);
      var to = all.indexOf(box);
      if (from >= 0 && to >= 0) {
        all.slice(Math.min(from, to), Math.max(from, to) + 1).forEach(function (each) {
          choose(each, box.checked);
        });
      }
    }
    choose(box, box.checked);
    selection.last = box;
    showSelection();
  });

  // "Select all on this page" (a link to ?select=all without JavaScript) and "Clear".
  document.addEventListener("click", function (event) {
    var all = event.target.closest && event.target.closest("[data-select-all]");
    var none = event.target.closest && event.target.closest("[data-select-none]");
    if (!all && !none) return;
    event.preventDefault();
    if (all) boxes().forEach(function (box) { choose(box, true); });
    else selection.ids.clear();
    showSelection();
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || !selection.ids.size) return;
    if (typing(event.target) && !event.target.matches("[data-select]")) return;
    selection.ids.clear();
    showSelection();
  });

  // After the bar's action the selection is done with; after any other swap it stays.
  document.addEventListener("htmx:afterRequest", function (event) {
    var element = event.detail.requestConfig && event.detail.requestConfig.elt;
    if (!element || !element.closest || !element.closest("#bulk-form")) return;
    if (event.detail.successful) selection.ids.clear();
    showSelection();
  });
  document.addEventListener("htmx:afterSettle", showSelection);

  // Refused as a whole (none of the selection may be changed that way: a teammate's cards,
  // say) the answer is a 404, which htmx doesn't swap: the toast says so instead.
  document.addEventListener("htmx:responseError", function (event) {
    var element = event.detail.requestConfig && event.detail.requestConfig.elt;
    var region = document.getElementById("toast");
    if (!element || !element.closest || !element.closest("#bulk-form") || !region) return;
    var toast = document.createElement("div");
    toast.className = "toast";
    toast.setAttribute("data-toast", "");
    var text = document.createElement("p");
    text.className = "toast__message";
    text.textContent = "Nothing was changed: none of the selected images is yours to change that way.";
    toast.appendChild(text);
    region.replaceChildren(toast);
    armToast();
  });

  // The page may come with boxes ticked ("Select all" without JavaScript, the back button).
  function readSelection() {
    boxes().forEach(function (box) { if (box.checked) selection.ids.add(box.value); });
    showSelection();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", readSelection);
  else readSelection();

  // -- the toast: dismissed by its button, or by itself after a while unless in use -------
  var toastTimer = null;
  function armToast() {
    clearTimeout(toastTimer);
    var toast = document.querySelector("[data-toast]");
    if (!toast) return;
    toastTimer = setTimeout(function () {
      if (toast.matches(":hover, :focus-within")) armToast();
      else toast.remove();
    }, 12000);
  }
  document.addEventListener("click", function (event) {
    var close = event.target.closest && event.target.closest("[data-dismiss-toast]");
    if (close) close.closest("[data-toast]").remove();
  });
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "toast") armToast();
  });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", armToast);
  else armToast();

  // -- compare: the slider shows B from the right over A (CSSOM, allowed by the CSP) -------
  document.addEventListener("input", function (event) {
    var slider = event.target.closest && event.target.closest("[data-compare-slider]");
    if (!slider) return;
    var stack = slider.closest("[data-compare-over]").querySelector(".compare__stack");
    stack.style.setProperty("--split", slider.value + "%");
  });

  // -- the studio as a team uses it -----------------------------------------------------
  // What the view holds is the server's word, on #gallery: its query (data-view), its
  // "Show" value (data-view-gallery) and the gallery the generate form follows while it is
  // shown (data-generate-into: one the person may add to). Whenever #gallery is replaced
  // (a filter, a tab, Back), the filter's select and the form's gallery follow it.
  var shownView = document.getElementById("gallery");

  function followView(force) {
    var view = document.getElementById("gallery");
    if (!view || (view === shownView && !force)) return;
    shownView = view;
    var show = document.querySelector("#gallery-filters select[name=gallery]");
    if (show && show.value !== view.dataset.viewGallery) show.value = view.dataset.viewGallery;
    var into = view.dataset.generateInto;
    var select = document.querySelector("#generate-form select[name=gallery]");
    if (!into || !select || select.value === into) return;
    if (!select.querySelector('option[value="' + into + '"]')) return;
    select.value = into;
    // The price panel asks again: the gallery's budget is among the limits it shows.
    select.dispatchEvent(new Event("change", { bubbles: true }));
  }
  document.addEventListener("htmx:afterSettle", function () { followView(false); });
  document.addEventListener("htmx:historyRestore", function () { followView(true); });

  // "Made by me" / "Everything I can see": one click, through the filter form (so the
  // other filters and the URL stay as the form says); a plain link without JavaScript.
  document.addEventListener("click", function (event) {
    var choice = event.target.closest("[data-view-choice]");
    var show = document.querySelector("#gallery-filters select[name=gallery]");
    if (!choice || !show || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    show.value = choice.dataset.viewChoice;
    show.dispatchEvent(new Event("change", { bubbles: true }));
  });

  // Generate says which view the page shows: the new card comes back only if it belongs
  // there, else a note says where it went.
  document.addEventListener("htmx:configRequest", function (event) {
    if (event.detail.elt.id !== "generate-form" || event.detail.verb !== "post") return;
    var view = document.getElementById("gallery");
    if (view) event.detail.parameters.view = view.dataset.view || "";
  });

  // After Generate, the note at the foot of the screen: gone at once if the new card is
  // in sight (a wide screen), else it stays until the card is seen, leading to it.
  function inSight(element) {
    var box = element.getBoundingClientRect();
    return box.top < window.innerHeight * 0.85 && box.bottom > 0;
  }
  function watchToasts() {
    document.querySelectorAll("#toasts .toast[data-in-view]").forEach(function (toast) {
      var card = document.getElementById(toast.dataset.sentCard);
      if (!card || inSight(card)) {
        toast.remove();
        return;
      }
      if (!("IntersectionObserver" in window) || toast.observed) return;
      toast.observed = true;
      new IntersectionObserver(function (entries, observer) {
        if (entries.some(function (entry) { return entry.isIntersecting; })) {
          observer.disconnect();
          toast.remove();
        }
      }, { threshold: 0.4 }).observe(card);
    });
  }
  document.addEventListener("htmx:afterSettle", watchToasts);
  document.addEventListener("click", function (event) {
    var toast = event.target.closest("#toasts .toast");
    if (!toast) return;
    var seeIt = event.target.closest(".toast__action[href^='#']");
    var card = seeIt && document.querySelector(seeIt.getAttribute("href"));
    if (card) {
      event.preventDefault();
      card.scrollIntoView({ block: "center", behavior: "smooth" });
    }
    if (card || event.target.closest("[data-dismiss-toast]")) toast.remove();
  });

  // The button says "Generate again" right after a Generate was accepted (the prompt stays
  // for a quick next try), so a second tap is a choice; any change makes it "Generate".
  document.addEventListener("input", function (event) {
    var form = event.target.closest && event.target.closest("#generate-form");
    var button = form && form.querySelector("button[data-sent]");
    if (!button) return;
    button.removeAttribute("data-sent");
    var label = button.querySelector(".generate__label");
    if (label) label.textContent = "Generate";
  });

  // The prompt's counter, and a warning before its limit (the field's maxlength) cuts a
  // paste short: said as it happens, never silently.
  var number = new Intl.NumberFormat("en");
  var lastCut = null;

  function countPrompt(textarea) {
    var counter = document.getElementById("prompt-count");
    if (!counter || textarea.name !== "prompt") return;
    var max = Number(counter.dataset.max) || 0;
    var length = textarea.value.length;
    var text = "";
    var state = "";
    if (lastCut) {
      text = "Your paste had " + number.format(lastCut.pasted) + " characters: only the first " +
        number.format(lastCut.kept) + " fit the " + number.format(max) +
        "-character limit, so the rest was cut. Shorten it to keep what matters.";
      state = "over";
    } else if (length >= max) {
      text = "The prompt is at its " + number.format(max) + "-character limit: nothing more can be added.";
      state = "over";
    } else if (length >= max * 0.9) {
      text = number.format(length) + " / " + number.format(max) + " characters: " +
        number.format(max - length) + " left before the limit.";
      state = "near";
    } else if (length) {
      text = number.format(length) + " / " + number.format(max);
    }
    var announcer = document.getElementById("announcer");
    if (announcer && state && counter.dataset.state !== state) announcer.textContent = text;
    counter.dataset.state = state;
    counter.textContent = text;
    counter.classList.toggle("prompt-count--near", state === "near");
    counter.classList.toggle("prompt-count--over", state === "over");
  }

  document.addEventListener("paste", function (event) {
    var textarea = event.target.closest && event.target.closest("#generate-form textarea");
    var counter = document.getElementById("prompt-count");
    if (!textarea || !counter || !event.clipboardData) return;
    var pasted = event.clipboardData.getData("text/plain").replace(/\r\n?/g, "\n").length;
    var selected = textarea.selectionEnd - textarea.selectionStart;
    var room = (Number(counter.dataset.max) || 0) - (textarea.value.length - selected);
    lastCut = pasted > room ? { pasted: pasted, kept: Math.max(room, 0) } : null;
  });
  document.addEventListener("input", function (event) {
    if (!event.target.matches || !event.target.matches("#generate-form textarea")) return;
    if (event.inputType !== "insertFromPaste") lastCut = null;
    countPrompt(event.target);
  });
  // A form swapped in ("Use these settings", an error) counts what it holds.
  function countFormPrompt() {
    var prompt = document.querySelector("#generate-form textarea[name=prompt]");
    if (prompt) countPrompt(prompt);
  }
  document.addEventListener("htmx:afterSettle", countFormPrompt);
  countFormPrompt();
})();
