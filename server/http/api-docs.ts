import express, { Router } from 'express';
import { absolutePath } from 'swagger-ui-dist';

const PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Tessera API</title><link rel="stylesheet" href="./swagger-ui.css"></head>
<body><div id="swagger-ui"></div><script src="./swagger-ui-bundle.js"></script><script src="./init.js"></script></body>
</html>`;

const INIT = `window.ui = SwaggerUIBundle({ url: '/api/v1/openapi.json', dom_id: '#swagger-ui', deepLinking: true });`;

/** Browsable API documentation at /api/docs, served from the swagger-ui-dist package (no CDN). */
export function apiDocsRouter(): Router {
  const router = Router();
  router.get('/', (req, res) => {
    // Relative asset URLs need the trailing slash.
    if (!req.originalUrl.endsWith('/')) res.redirect(301, `${req.originalUrl}/`);
    else res.type('html').send(PAGE);
  });
  router.get('/init.js', (_req, res) => res.type('application/javascript').send(INIT));
  router.use(express.static(absolutePath(), { index: false }));
  return router;
}
