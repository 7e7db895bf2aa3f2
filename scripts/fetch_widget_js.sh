#!/usr/bin/env bash
# Fetch the JavaScript the static book needs to work offline (widgets and MathJax) into
# _vendor/ (git-ignored), from the npm registry with `npm pack` (npm checks each tarball
# against the registry's integrity hash):
#   require.js + embed-amd.js (@jupyter-widgets/html-manager 1.x, the one for ipywidgets 8):
#                  draw the saved widget state on pages that have widgets;
#   mathjax/tex-svg.js (MathJax 3): the book's equations.
# plotly.min.js is not fetched: _ext/book_assets.py copies it from the installed plotly package.
# The build (_ext/book_assets.py) serves _vendor/ as static files and warns when a file is missing.
set -euo pipefail
HTML_MANAGER_VERSION=1.0.15
REQUIREJS_VERSION=2.3.8
MATHJAX_VERSION=3.2.2
root=$(cd "$(dirname "$0")/.." && pwd)
vendor=$root/_vendor
stamp=$vendor/.versions
want="html-manager $HTML_MANAGER_VERSION, requirejs $REQUIREJS_VERSION, mathjax $MATHJAX_VERSION"
if [ -f "$vendor/require.js" ] && [ -f "$vendor/embed-amd.js" ] && [ -f "$vendor/mathjax/tex-svg.js" ] \
   && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "book JavaScript up to date in $vendor ($want)"; exit 0
fi
command -v npm >/dev/null || { echo "npm is needed to fetch the book's JavaScript" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "@jupyter-widgets/html-manager@$HTML_MANAGER_VERSION" \
   "requirejs@$REQUIREJS_VERSION" "mathjax@$MATHJAX_VERSION" >/dev/null)
mkdir -p "$vendor/mathjax"
tar -xzf "$tmp/jupyter-widgets-html-manager-$HTML_MANAGER_VERSION.tgz" -O package/dist/embed-amd.js >"$vendor/embed-amd.js"
tar -xzf "$tmp/requirejs-$REQUIREJS_VERSION.tgz" -O package/require.js >"$vendor/require.js"
tar -xzf "$tmp/mathjax-$MATHJAX_VERSION.tgz" -O package/es5/tex-svg.js >"$vendor/mathjax/tex-svg.js"
echo "$want" >"$stamp"
echo "fetched into $vendor: $want"
