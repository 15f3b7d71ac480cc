// Darkroom's small behaviours. No inline scripts: the pages run under a strict CSP.
(function () {
  "use strict";
})();
