import { join } from 'node:path';
import { Router } from 'express';
import { absolutePath } from 'swagger-ui-dist';

const PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Tessera API</title><link rel="stylesheet" href="./swagger-ui.css"></head>
<body><div id="swagger-ui"></div><script src="./swagger-ui-bundle.js"></script><script src="./swagger-initializer.js"></script></body>
</html>`;

const INIT = `window.ui = SwaggerUIBundle({ url: '/api/v1/openapi.json', dom_id: '#swagger-ui', deepLinking: true });`;

/**
 * Names under /api/docs/ that the package ships with its demo configuration (the petstore):
 * they answer with our page and our initializer instead. `init.js` is the initializer's
 * earlier name, kept for pages cached before it changed.
 */
const OURS: Record<string, { type: string; body: string }> = {
  'index.html': { type: 'html', body: PAGE },
  'swagger-initializer.js': { type: 'application/javascript', body: INIT },
  'init.js': { type: 'application/javascript', body: INIT },
};

/** The package's files the page (and Swagger UI's OAuth flow) loads; nothing else in it is served. */
const ASSETS = new Set([
  'swagger-ui.css',
  'swagger-ui.css.map',
  'swagger-ui-bundle.js',
  'swagger-ui-bundle.js.map',
  'swagger-ui-standalone-preset.js',
  'swagger-ui-standalone-preset.js.map',
  'index.css',
  'favicon-16x16.png',
  'favicon-32x32.png',
  'oauth2-redirect.html',
  'oauth2-redirect.js',
]);

/**
 * Browsable API documentation at /api/docs, served from the swagger-ui-dist package (no CDN).
 * Files are served by name from a fixed list rather than by a static handler over the package,
 * so no spelling of a path (encoded, or the package's own index.html) reaches the stock page.
 */
export function apiDocsRouter(): Router {
  const router = Router();
  const dist = absolutePath();
  router.get('/', (req, res) => {
    // Relative asset URLs need the trailing slash.
    if (!req.originalUrl.split('?')[0]!.endsWith('/')) res.redirect(301, `${req.baseUrl}/`);
    else res.type('html').send(PAGE);
  });
  router.get('/:file', (req, res, next) => {
    // req.params is already percent-decoded: /api/docs/%69ndex.html names index.html here.
    const name = req.params.file;
    const own = Object.hasOwn(OURS, name) ? OURS[name] : undefined;
    if (own) res.type(own.type).send(own.body);
    else if (ASSETS.has(name)) res.sendFile(join(dist, name), { maxAge: '1d' });
    else next();
  });
  return router;
}
