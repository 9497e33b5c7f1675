// Parses every ```mermaid block of the Markdown files given as arguments with the
// mermaid library (in jsdom: its parser needs a DOM, no browser). One line per file;
// exits 1 when a block does not parse or a file has no block.
import { readFileSync } from "node:fs";
import { JSDOM } from "jsdom";

const dom = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import("mermaid");
mermaid.initialize({ startOnLoad: false });

let failed = 0;
for (const file of process.argv.slice(2)) {
  const blocks = [...readFileSync(file, "utf8").matchAll(/^```mermaid\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
  if (blocks.length === 0) {
    console.log(`${file}: no mermaid block`);
    failed++;
    continue;
  }
  for (const [i, block] of blocks.entries()) {
    try {
      await mermaid.parse(block);
    } catch (e) {
      console.log(`${file}: mermaid block ${i + 1}: ${String(e.message ?? e)}`);
      failed++;
    }
  }
}
process.exit(failed ? 1 : 0);
