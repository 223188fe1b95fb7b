/* Small progressive enhancements; every page works without it. */
(function () {
  "use strict";
  // Drop empty filter fields from the query string so shared links stay short.
  var form = document.getElementById("filters");
  if (form) {
    form.addEventListener("submit", function () {
      Array.prototype.forEach.call(form.elements, function (el) {
        if (el.name && el.value === "" ) { el.disabled = true; }
      });
    });
  }
})();
