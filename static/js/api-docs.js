// GET /api/docs: Swagger UI over this server's OpenAPI document. swagger-ui-bundle.js (loaded
// first) defines SwaggerUIBundle; this file stands in for the inline start-up snippet that the
// pages' CSP (script-src 'self') refuses.
const root = document.getElementById('swagger-ui');

window.ui = SwaggerUIBundle({
  url: root.dataset.openapiUrl,
  domNode: root,
  deepLinking: true,
  // The default validator badge is an image from another site: the page loads nothing from elsewhere.
  validatorUrl: null,
});
