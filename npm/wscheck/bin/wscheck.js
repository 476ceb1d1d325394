#!/usr/bin/env node
// The `wscheck` command of the npm package: finds the binary that npm installed from the
// platform package (an optional dependency, chosen by its `os`/`cpu`) and runs it with
// this process's arguments, stdio and exit code. WSCHECK_BINARY_PATH overrides the binary.
"use strict";

const { spawnSync } = require("child_process");
const path = require("path");

const PACKAGES = {
  "linux x64": "@wscheck/linux-x64",
  "linux arm64": "@wscheck/linux-arm64",
  "win32 x64": "@wscheck/win32-x64",
};

function binaryPath() {
  if (process.env.WSCHECK_BINARY_PATH) {
    return process.env.WSCHECK_BINARY_PATH;
  }
  const platform = `${process.platform} ${process.arch}`;
  const pkg = PACKAGES[platform];
  if (!pkg) {
    throw new Error(
      `wscheck has no prebuilt binary for ${platform} (there are: ${Object.keys(PACKAGES).join(", ")}); ` +
        "install it with `cargo install --locked --git https://github.com/wscheck/wscheck wscheck`"
    );
  }
  const exe = process.platform === "win32" ? "wscheck.exe" : "wscheck";
  let dir;
  try {
    dir = path.dirname(require.resolve(`${pkg}/package.json`));
  } catch (e) {
    throw new Error(
      `the package ${pkg} (wscheck's binary for ${platform}) is not installed; ` +
        "npm skips optional dependencies with --no-optional or --omit=optional: reinstall without it"
    );
  }
  return path.join(dir, "bin", exe);
}

function main() {
  let binary;
  try {
    binary = binaryPath();
  } catch (e) {
    console.error(`wscheck: ${e.message}`);
    return 2;
  }
  const result = spawnSync(binary, process.argv.slice(2), { stdio: "inherit" });
  if (result.error) {
    console.error(`wscheck: cannot run ${binary}: ${result.error.message}`);
    return 2;
  }
  if (result.signal) {
    process.kill(process.pid, result.signal);
    return 1;
  }
  return result.status === null ? 1 : result.status;
}

process.exitCode = main();
