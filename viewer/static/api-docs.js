/* Interactive API docs from the vendored Swagger UI (swagger-ui-dist 5.35.0): no CDN, no inline script. */
(function () {
  "use strict";
  if (typeof SwaggerUIBundle === "undefined") { return; }
  window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: false,
                                 validatorUrl: null, tryItOutEnabled: false });
})();
