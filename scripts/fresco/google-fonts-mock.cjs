// Offline stand-in for the Google Fonts CSS API, used by `next build` through
// NEXT_FONT_GOOGLE_MOCKED_RESPONSES (a module exporting { [cssUrl]: cssText }).
//
// Fresco loads one Google font (app/layout.tsx: Quicksand 300-700, subsets latin and
// latin-ext, display swap). This module answers every CSS URL for the Quicksand family
// with CSS in Google's format (a `/* subset */` comment above each @font-face, which is
// how Next picks the files to preload), pointing at the woff2 files of npm's
// @fontsource/quicksand. Next reads a `src: url(/absolute/path)` from disk when mocked.
// Any other family fails the build loudly (Next reports "Missing mocked response").
//
// FRESCO_FONTSOURCE_DIR: the unpacked @fontsource/quicksand package (with files/ and
// unicode.json).
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const dir = process.env.FRESCO_FONTSOURCE_DIR;
if (!dir) throw new Error('google-fonts-mock: FRESCO_FONTSOURCE_DIR is not set');

const ranges = JSON.parse(fs.readFileSync(path.join(dir, 'unicode.json'), 'utf8'));
// Google's order: the narrower subsets first, latin last.
const subsets = ['vietnamese', 'latin-ext', 'latin'].filter((s) => ranges[s]);

function cssFor(url) {
  const query = new URL(url).searchParams;
  const family = query.get('family') || '';
  const display = query.get('display') || 'swap';
  // family=Quicksand:wght@300;400;500 or a range wght@300..700 (variable font)
  const spec = family.split('@')[1] || '400';
  let weights;
  const range = spec.match(/^(\d+)\.\.(\d+)$/);
  if (range) {
    weights = [300, 400, 500, 600, 700].filter((w) => w >= +range[1] && w <= +range[2]);
  } else {
    weights = spec.split(';').map((w) => Number(w.split(',').pop()));
  }
  const blocks = [];
  for (const weight of weights) {
    for (const subset of subsets) {
      const file = path.join(dir, 'files', `quicksand-${subset}-${weight}-normal.woff2`);
      if (!fs.existsSync(file)) throw new Error(`google-fonts-mock: no font file ${file}`);
      blocks.push(
        `/* ${subset} */\n` +
          '@font-face {\n' +
          "  font-family: 'Quicksand';\n" +
          '  font-style: normal;\n' +
          `  font-weight: ${weight};\n` +
          `  font-display: ${display};\n` +
          `  src: url(${file}) format('woff2');\n` +
          `  unicode-range: ${ranges[subset]};\n` +
          '}\n',
      );
    }
  }
  return blocks.join('');
}

module.exports = new Proxy(
  {},
  {
    get(_target, key) {
      if (typeof key !== 'string' || !key.startsWith('https://fonts.googleapis.com/')) return undefined;
      const family = new URL(key).searchParams.get('family') || '';
      if (!/^Quicksand(:|$)/.test(family)) return undefined;
      return cssFor(key);
    },
  },
);
