#!/usr/bin/env node
// Used by scripts/build-release: `node npm/stamp-version.js DIR VERSION` sets VERSION in
// every DIR/*/package.json, and in the wscheck package's optionalDependencies on the
// platform packages, so that a release's packages all carry the crate's version.
"use strict";

const fs = require("fs");
const path = require("path");

const [dir, version] = process.argv.slice(2);
if (!dir || !/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(version || "")) {
  console.error("usage: stamp-version.js DIR VERSION");
  process.exit(2);
}
for (const name of fs.readdirSync(dir)) {
  const file = path.join(dir, name, "package.json");
  if (!fs.existsSync(file)) continue;
  const pkg = JSON.parse(fs.readFileSync(file, "utf8"));
  pkg.version = version;
  for (const dep of Object.keys(pkg.optionalDependencies || {})) {
    pkg.optionalDependencies[dep] = version;
  }
  fs.writeFileSync(file, JSON.stringify(pkg, null, 2) + "\n");
}
