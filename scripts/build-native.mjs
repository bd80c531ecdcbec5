#!/usr/bin/env node
// npm install hook: builds the addon with node-gyp. Node's headers are taken from the
// system when present, since node-gyp cannot download them on an offline machine.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

const args = ["rebuild"];
if (existsSync("/usr/include/node/node_api.h")) args.push("--nodedir=/usr");
const jobs = process.env.JOBS ?? "2";
args.push(`-j`, jobs);
const local = "node_modules/.bin/node-gyp";
const cmd = existsSync(local) ? local : "node-gyp";
const r = spawnSync(cmd, args, { stdio: "inherit" });
process.exit(r.status ?? 1);
