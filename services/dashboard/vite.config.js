// @ts-check
// Vite build of the dashboard: every asset bundled into dist/ (served by
// hoheit-api at `/`), nothing loaded from another host at run time.
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Leaflet's marker images are inlined only where small; keep the rest as files.
    assetsInlineLimit: 4096,
    sourcemap: false,
    chunkSizeWarningLimit: 400,
  },
  server: {
    // `npm run dev`: the API on its local port serves the data.
    proxy: { '/v1': 'http://127.0.0.1:8080' },
  },
});
