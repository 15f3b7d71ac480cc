// Share links: "Copy" puts a link on the clipboard. Delegated from the document, so it
// keeps working on cards that htmx swaps in.
(function () {
  "use strict";

  function confirmCopied(button) {
    var label = button.textContent;
    button.textContent = "Copied";
    button.classList.add("is-copied");
    window.setTimeout(function () {
      button.textContent = label;
      button.classList.remove("is-copied");
    }, 2000);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-target]");
    if (!button) return;
    var field = document.getElementById(button.dataset.copyTarget);
    if (!field) return;
    field.select();
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(function () {
        confirmCopied(button);
      });
    } else if (document.execCommand("copy")) {
      // Plain-http instances (a team server on the LAN) have no clipboard API.
      confirmCopied(button);
    }
    // Otherwise the link stays selected, ready for Ctrl+C / Cmd+C.
  });
})();
