#!/usr/bin/env bash
# Fetch the JavaScript the static book needs to work offline (widgets and MathJax) into
# _vendor/ (git-ignored), from the npm registry with `npm pack` (npm checks each tarball
# against the registry's integrity hash):
#   require.js + embed-amd.js (@jupyter-widgets/html-manager 1.x, the one for ipywidgets 8):
#                  draw the saved widget state on pages that have widgets;
#   mathjax/tex-svg.js (MathJax 3): the book's equations;
#   the Font Awesome fonts embed-amd.js's CSS names (hashed files beside it in the package): webpack
#                  resolves them against the *page* (public path ""), so each page 404'd them; the
#                  references are rewritten to the folder embed-amd.js is served from (_static/).
# plotly.min.js is not fetched: _ext/book_assets.py copies it from the installed plotly package.
# The build (_ext/book_assets.py) serves _vendor/ as static files and warns when a file is missing.
set -euo pipefail
HTML_MANAGER_VERSION=1.0.15
REQUIREJS_VERSION=2.3.8
MATHJAX_VERSION=3.2.2
root=$(cd "$(dirname "$0")/.." && pwd)
vendor=$root/_vendor
stamp=$vendor/.versions
want="html-manager $HTML_MANAGER_VERSION (fonts local), requirejs $REQUIREJS_VERSION, mathjax $MATHJAX_VERSION"
if [ -f "$vendor/require.js" ] && [ -f "$vendor/embed-amd.js" ] && [ -f "$vendor/mathjax/tex-svg.js" ] \
   && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "book JavaScript up to date in $vendor ($want)"; exit 0
fi
command -v npm >/dev/null || {
  echo "npm (Node.js) is needed once to fetch the book's JavaScript (widgets, equations): install Node.js, e.g." >&2
  echo "  apt-get install nodejs npm   |   brew install node   |   https://nodejs.org" >&2
  exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
if ! (cd "$tmp" && npm pack --silent "@jupyter-widgets/html-manager@$HTML_MANAGER_VERSION" \
   "requirejs@$REQUIREJS_VERSION" "mathjax@$MATHJAX_VERSION" >/dev/null); then
  echo "could not fetch the book's JavaScript from the npm registry (offline?): connect once and rerun $0" >&2
  exit 1
fi
mkdir -p "$vendor/mathjax" "$tmp/html-manager"
tar -xzf "$tmp/jupyter-widgets-html-manager-$HTML_MANAGER_VERSION.tgz" -C "$tmp/html-manager" package/dist
fonts=$(cd "$tmp/html-manager/package/dist" && ls | grep -E '^[0-9a-f]{20}\.(woff2?|ttf|eot|svg)$')
for f in $fonts; do cp "$tmp/html-manager/package/dist/$f" "$vendor/$f"; done
# e.exports=n.p+"<hash>.woff2"  ->  e.exports=<folder of the embed-amd.js script>+"<hash>.woff2"
base='(document.querySelector("script[src*=\\"embed-amd.js\\"]")||{src:""}).src.replace(/[^\/]*$/,"")'
sed -E "s#e\.exports=[a-z]\.p\+\"([0-9a-f]{20}\.(woff2?|ttf|eot|svg))\"#e.exports=$base+\"\1\"#g" \
  "$tmp/html-manager/package/dist/embed-amd.js" >"$vendor/embed-amd.js"
rewritten=$(grep -oF '.src.replace(/[^/]*$/,"")+"' "$vendor/embed-amd.js" | wc -l || true)
[ "$rewritten" -ge "$(echo "$fonts" | wc -w)" ] || { echo "fetch_widget_js: font references in embed-amd.js not found (new html-manager?)" >&2; exit 1; }
tar -xzf "$tmp/requirejs-$REQUIREJS_VERSION.tgz" -O package/require.js >"$vendor/require.js"
tar -xzf "$tmp/mathjax-$MATHJAX_VERSION.tgz" -O package/es5/tex-svg.js >"$vendor/mathjax/tex-svg.js"
echo "$want" >"$stamp"
echo "fetched into $vendor: $want"
