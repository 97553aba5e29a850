import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const root = fileURLToPath(new URL('./client', import.meta.url));

export default defineConfig({
  root,
  base: '/',
  build: {
    outDir: fileURLToPath(new URL('./dist/client', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    // TF.js and ORT-web are one lazily loaded chunk of the bench page; nothing else comes close.
    chunkSizeWarningLimit: 800,
    rollupOptions: {
      input: {
        index: fileURLToPath(new URL('./client/index.html', import.meta.url)),
        network: fileURLToPath(new URL('./client/network.html', import.meta.url)),
        bench: fileURLToPath(new URL('./client/bench.html', import.meta.url)),
      },
      onwarn(warning, warn) {
        // zod's sources carry /* @__PURE__ */ hints in places Rollup ignores; harmless noise.
        if (warning.code === 'INVALID_ANNOTATION') return;
        warn(warning);
      },
    },
  },
  worker: { format: 'es' },
  // ORT-web finds its .wasm beside its own module; pre-bundling would move the module and lose it (dev server only).
  optimizeDeps: { exclude: ['onnxruntime-web'] },
  server: {
    fs: { allow: [fileURLToPath(new URL('.', import.meta.url))] },
    proxy: { '/api': 'http://127.0.0.1:8080', '/socket.io': { target: 'http://127.0.0.1:8080', ws: true } },
  },
});
