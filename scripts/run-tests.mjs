#!/usr/bin/env node
// Runs the compiled test files with node's test runner. Node 20 has no glob support
// in --test and would otherwise also load the helper modules as test files.
// Usage: node scripts/run-tests.mjs [substring filter...]
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";

function find(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return find(p);
    return e.name.endsWith(".test.js") ? [p] : [];
  });
}

const filters = process.argv.slice(2);
const files = find("dist/test")
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();
if (files.length === 0) {
  console.error(`no test files matched ${filters.join(" ")}`);
  process.exit(1);
}
const r = spawnSync(process.execPath, ["--test", "--test-concurrency=1", ...files], { stdio: "inherit" });
process.exit(r.status ?? 1);
