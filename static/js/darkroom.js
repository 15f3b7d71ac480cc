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

  // A polled card is replaced whenever it changes, so it can't be its own live region: the
  // page's #announcer says when a card's status changes ("Completed: a fox in the snow").
  document.addEventListener("htmx:beforeSwap", function (event) {
    var card = event.detail.target;
    var announcer = document.getElementById("announcer");
    var html = event.detail.xhr.responseText;
    if (!announcer || !html || !card.matches(".card[data-status]")) return;
    var next = new DOMParser().parseFromString(html, "text/html").querySelector(".card[data-status]");
    if (!next || next.dataset.status === card.dataset.status) return;
    var badge = next.querySelector(".badge");
    var prompt = next.querySelector(".card__prompt");
    announcer.textContent = (badge ? badge.textContent.trim() : next.dataset.status) +
      ": " + (prompt ? prompt.textContent.trim() : "");
  });
})();
