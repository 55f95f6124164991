// Builds the dashboard into dist/: `npm run build` (make install runs it after `npm ci`).
// esbuild bundles src/main.jsx (Preact, Chart.js and our code) into dist/assets/app.js and the
// CSS it imports into dist/assets/app.css; index.html and the icon are copied beside them.
import { copyFile, mkdir, rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));

await rm(here("dist"), { recursive: true, force: true });
await mkdir(here("dist/assets"), { recursive: true });
await esbuild.build({
  entryPoints: [here("src/main.jsx")],
  outfile: here("dist/assets/app.js"),
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: true,
  sourcemap: true,
  jsx: "automatic",
  jsxImportSource: "preact",
  logLevel: "warning",
});
await copyFile(here("index.html"), here("dist/index.html"));
await copyFile(here("favicon.svg"), here("dist/assets/favicon.svg"));
console.log("dashboard built into", here("dist"));
