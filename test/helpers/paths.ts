// Tests run from dist/test/...; fixtures and scripts live in the source tree.
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const up = resolve(dir, "..");
    if (up === dir) throw new Error("cannot find the repository root from the test directory");
    dir = up;
  }
  return dir;
}

export const repoRoot = findRepoRoot();

export function fixturePath(...parts: string[]): string {
  return join(repoRoot, "test", "fixtures", ...parts);
}

/** ../shared beside the checkout (data, reference scripts), when present. */
export const sharedRoot = resolve(repoRoot, "..", "shared");
