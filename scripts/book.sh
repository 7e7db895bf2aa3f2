#!/usr/bin/env bash
# From a fresh clone to the complete offline book, in one command (Linux or macOS):
#
#   bash scripts/book.sh        # then open _build/html/index.html
#
# 1. a virtual environment in .venv (VENV=... to choose another; an active one is used as it is);
# 2. requirements.txt + this package (editable). On Linux torch comes from the CPU-only wheel index
#    (TORCH_INDEX_URL, default https://download.pytorch.org/whl/cpu): the default Linux wheel carries
#    several GB of CUDA libraries. Skipped when nothing changed since the last install;
# 3. the book's JavaScript (widgets, MathJax) from the npm registry into _vendor/: needs Node.js/npm
#    once (scripts/fetch_widget_js.sh);
# 4. the strict build (warnings are errors), which renders the committed notebook outputs: nothing is
#    retrained, no CIFAR-10 needed.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
say() { printf '\n== %s\n' "$*"; }

if [ -n "${VIRTUAL_ENV:-}" ]; then
  venv=$VIRTUAL_ENV
else
  venv=${VENV:-.venv}
  if [ ! -x "$venv/bin/python" ]; then
    py=${PYTHON:-python3}
    command -v "$py" >/dev/null || { echo "Python 3.10+ is needed (python3 not found)" >&2; exit 1; }
    "$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "Python 3.10+ is needed ($("$py" -V))" >&2; exit 1; }
    say "virtual environment $venv"
    "$py" -m venv "$venv"
  fi
fi
python=$venv/bin/python

stamp=$venv/.resnet-book-installed
want=$(cat requirements.txt pyproject.toml | cksum)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing requirements.txt and the package into $venv"
  extra=()
  index=${TORCH_INDEX_URL-https://download.pytorch.org/whl/cpu}
  if [ "$(uname -s)" = Linux ] && [ -n "$index" ]; then
    host=$(printf '%s' "$index" | sed -E 's#^[a-z]+://([^/:]+).*#\1#')
    if "$python" -c "import socket, sys; socket.setdefaulttimeout(5); socket.getaddrinfo(sys.argv[1], 443)" "$host" 2>/dev/null; then
      extra=(--extra-index-url "$index")
    else
      echo "note: $host is not reachable; torch comes from your default index (on Linux that may be the large CUDA build)"
    fi
  fi
  "$python" -m pip install -q --upgrade pip
  "$python" -m pip install -q ${extra[@]+"${extra[@]}"} -r requirements.txt  # (bash 3.2 on macOS: empty array)
  "$python" -m pip install -q --no-deps -e .
  echo "$want" >"$stamp"
else
  echo "requirements already installed in $venv"
fi

say "the book's JavaScript (npm registry, once)"
bash scripts/fetch_widget_js.sh

say "strict build"
rm -rf _build/html && mkdir -p _build
PATH="$venv/bin:$PATH" "$venv/bin/jupyter-book" build -W -n --keep-going . >_build/build.log 2>&1 || {
  tail -n 40 _build/build.log >&2; echo "book build failed (full log: _build/build.log)" >&2; exit 1; }
test -f _build/html/index.html
echo "book built in $(( $(date +%s) - start )) s: open $(pwd)/_build/html/index.html"
