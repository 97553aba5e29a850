import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCoordinator, type TestCoordinator } from '../support/coordinator';

let coord: TestCoordinator;

beforeAll(async () => {
  coord = await startTestCoordinator({ canaries: false });
});
afterAll(async () => coord.dispose());

/** Loads a docs URL as a browser would: follows redirects, then every script the page loads. */
async function loadDocs(path: string): Promise<{ finalUrl: string; html: string; scripts: Map<string, string> }> {
  const res = await fetch(`${coord.url}${path}`);
  expect(res.status, path).toBe(200);
  expect(res.headers.get('content-type'), path).toMatch(/^text\/html/);
  const html = await res.text();
  const scripts = new Map<string, string>();
  for (const [, src] of html.matchAll(/<script[^>]*\ssrc="([^"]+)"/g)) {
    const url = new URL(src!, res.url);
    const script = await fetch(url);
    expect(script.status, `${path} → ${url.pathname}`).toBe(200);
    scripts.set(url.pathname, await script.text());
  }
  return { finalUrl: new URL(res.url).pathname, html, scripts };
}

/** The spec URL the page's initializer hands to SwaggerUIBundle. */
function specUrlOf(scripts: Map<string, string>): string | undefined {
  for (const [path, text] of scripts) {
    if (path.endsWith('swagger-ui-bundle.js')) continue;
    const m = /SwaggerUIBundle\(\s*\{[^}]*?\burl\s*:\s*["']([^"']+)["']/.exec(text);
    if (m) return m[1];
  }
  return undefined;
}

describe('/api/docs', () => {
  it.each(['/api/docs', '/api/docs/', '/api/docs/index.html', '/api/docs/%69ndex.html', '/api/docs/index.html?url=https://petstore.swagger.io/v2/swagger.json'])(
    '%s shows our API, never the petstore',
    async (path) => {
      const { html, scripts } = await loadDocs(path);
      expect(html).not.toMatch(/petstore/i);
      expect(html).toContain('swagger-ui-bundle.js');
      for (const [src, text] of scripts) expect(text, src).not.toMatch(/petstore/i);
      const spec = specUrlOf(scripts);
      expect(spec).toBe('/api/v1/openapi.json');
      const doc = (await (await fetch(`${coord.url}${spec}`)).json()) as { info: { title: string } };
      expect(doc.info.title).toBe('Tessera coordinator');
    },
  );

  it('redirects the bare path to the trailing slash the relative asset URLs need', async () => {
    const res = await fetch(`${coord.url}/api/docs?x=1`, { redirect: 'manual' });
    expect(res.status).toBe(301);
    expect(res.headers.get('location')).toBe('/api/docs/');
  });

  it.each(['/api/docs/swagger-initializer.js', '/api/docs/init.js', '/api/docs/swagger-initializer%2Ejs'])('%s configures our document', async (path) => {
    const res = await fetch(`${coord.url}${path}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/javascript/);
    const text = await res.text();
    expect(text).not.toMatch(/petstore/i);
    expect(specUrlOf(new Map([[path, text]]))).toBe('/api/v1/openapi.json');
  });

  it('serves the assets the page needs and nothing else from the package', async () => {
    for (const asset of ['swagger-ui.css', 'swagger-ui-bundle.js', 'favicon-32x32.png']) {
      expect((await fetch(`${coord.url}/api/docs/${asset}`)).status, asset).toBe(200);
    }
    for (const other of ['package.json', 'README.md', 'absolute-path.js', 'swagger-ui.js', 'Index.html', '..%2Fopenapi.json', 'sub/index.html']) {
      const res = await fetch(`${coord.url}/api/docs/${other}`);
      expect(res.status, other).toBe(404);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('NOT_FOUND');
    }
  });
});
