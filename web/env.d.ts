/** esbuild bundles imported stylesheets into dist/web/main.css; the import itself has no value. */
declare module '*.css';
