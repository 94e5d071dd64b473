// Parses Swift files with tree-sitter-swift; prints ERROR/MISSING nodes.
const fs = require('fs');
const Parser = require('tree-sitter');
const Swift = require('tree-sitter-swift');
const parser = new Parser();
parser.setLanguage(Swift);
let bad = 0;
for (const file of process.argv.slice(2)) {
  const src = fs.readFileSync(file, 'utf8');
  const tree = parser.parse(src, null, { bufferSize: 4 * 1024 * 1024 });
  const walk = (n) => {
    if (n.type === 'ERROR' || n.isMissing) {
      bad++;
      console.log(`${file}:${n.startPosition.row + 1}:${n.startPosition.column + 1}: ${n.isMissing ? 'MISSING ' + n.type : 'ERROR'}: ${src.slice(n.startIndex, Math.min(n.endIndex, n.startIndex + 80)).replace(/\n/g, '\\n')}`);
      if (n.type === 'ERROR') return;
    }
    for (let i = 0; i < n.childCount; i++) walk(n.child(i));
  };
  walk(tree.rootNode);
}
console.log(`checked ${process.argv.length - 2} files, ${bad} problems`);
process.exit(bad ? 1 : 0);
