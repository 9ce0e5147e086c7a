#!/usr/bin/env bash
# Regenerates the vendored GraphiQL assets of this directory from the npm registry.
#
# Not run by the build: the files it writes are committed and embedded with `include_bytes!`.
# Needs `npm` and `node`. Usage: crates/graphql/assets/vendor.sh
#
# GraphiQL 3.x is the last major version that ships a UMD bundle (`graphiql.min.js`, global
# `GraphiQL`); 4.x and later are ES modules only. It needs React 18 UMD builds (React 19 ships no
# UMD). Its CSS inlines its fonts as `data:` URLs, which the default Content-Security-Policy
# (`default-src 'self'`, no `font-src data:`) blocks: the latin subsets are written out as files
# served from the same origin and the other subsets are dropped (system fonts cover them).
set -euo pipefail

GRAPHIQL=3.9.0
REACT=18.3.1
FONTSOURCE=5.3.0

here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

npm pack --silent "graphiql@$GRAPHIQL" "react@$REACT" "react-dom@$REACT" \
    "@fontsource/roboto@$FONTSOURCE" "@fontsource/fira-code@$FONTSOURCE" >/dev/null
for pkg in "graphiql-$GRAPHIQL" "react-$REACT" "react-dom-$REACT" \
    "fontsource-roboto-$FONTSOURCE" "fontsource-fira-code-$FONTSOURCE"; do
    mkdir "$pkg"
    tar xzf "$pkg.tgz" -C "$pkg"
done

# The source map is not vendored: drop the comment that points browsers' dev tools to it.
sed '/^\/\/# sourceMappingURL=/d' "graphiql-$GRAPHIQL/package/graphiql.min.js" >"$here/graphiql.min.js"
cp "react-$REACT/package/umd/react.production.min.js" "$here/react.production.min.js"
cp "react-dom-$REACT/package/umd/react-dom.production.min.js" "$here/react-dom.production.min.js"
cp "graphiql-$GRAPHIQL/package/LICENSE" "$here/licenses/graphiql-LICENSE"
cp "react-$REACT/package/LICENSE" "$here/licenses/react-LICENSE"
cp "react-dom-$REACT/package/LICENSE" "$here/licenses/react-dom-LICENSE"
cp "fontsource-roboto-$FONTSOURCE/package/LICENSE" "$here/licenses/roboto-OFL.txt"
cp "fontsource-fira-code-$FONTSOURCE/package/LICENSE" "$here/licenses/fira-code-OFL.txt"

rm -f "$here"/*.woff "$here"/*.woff2
node - "graphiql-$GRAPHIQL/package/graphiql.min.css" "$here" <<'JS'
const fs = require('fs');
const path = require('path');
const [css, out] = process.argv.slice(2);
let text = fs.readFileSync(css, 'utf8');
const seen = new Set();
text = text.replace(/@font-face\{[^}]*\}/g, (face) => {
  const family = /font-family:([^;]+);/.exec(face)[1].trim();
  const style = /font-style:([^;]+);/.exec(face)[1].trim();
  const weight = /font-weight:([^;]+);/.exec(face)[1].trim();
  const range = /unicode-range:([^;}]+)/.exec(face)[1].trim();
  // Keep the latin subset only (the one whose range starts with U+00-FF).
  if (!range.startsWith('U+??')) return '';
  const m = /url\(data:font\/(woff2?);base64,([^)]+)\)/.exec(face);
  const name = `${family.toLowerCase().replace(/\s+/g, '-')}-${style}-${weight}-latin.${m[1]}`;
  if (seen.has(name)) throw new Error(`duplicate font ${name}`);
  seen.add(name);
  fs.writeFileSync(path.join(out, name), Buffer.from(m[2], 'base64'));
  return face.replace(m[0], `url(${name})`);
});
if (/url\(data:font/.test(text)) throw new Error('a data: font is left in the CSS');
fs.writeFileSync(path.join(out, 'graphiql.min.css'), text);
console.log([...seen].join('\n'));
JS
ls -l "$here"
