"""Sphinx extension: the book's JavaScript, served from the build itself so pages work offline.

* ``plotly.min.js`` is copied from the installed plotly package into the build's ``_static/``
  and loaded on every page before anything else: it always matches the plotly version that
  made the notebooks' outputs, and ``require.js`` (loaded later, on widget pages only) cannot
  capture it as an anonymous AMD module.
* ``_vendor/`` (filled by ``scripts/fetch_widget_js.sh`` from the npm registry) is served as static
  files: ``require.js`` and ``embed-amd.js`` draw saved widget state (myst-nb adds them to pages
  with widgets, see ``nb_ipywidgets_js`` in ``_config.yml``), ``mathjax/tex-svg.js`` renders the
  equations (``mathjax_path``). A missing file is a warning, i.e. an error in a strict build.
  (Not ``_static/``: Jupyter Book adds every ``.js`` found there to every page.)
* Each page lists each script once. sphinx-thebe and sphinx-togglebutton add inline scripts after
  the builder exists; Sphinx 7.4 keeps them once as ``filename=None`` (added to the builder) and once
  as ``filename=''`` (re-read from the registry), so every page declared ``const THEBE_JS_URL``
  twice (a ``SyntaxError`` in the console). :func:`unique_scripts` drops the second copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.util import logging

logger = logging.getLogger(__name__)
VENDOR = "_vendor"
VENDOR_FILES = ("require.js", "embed-amd.js", "mathjax/tex-svg.js")


def plotly_js() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def serve_vendor(app: Sphinx, config: Config) -> None:
    vendor = Path(app.srcdir) / VENDOR
    missing = [name for name in VENDOR_FILES if not (vendor / name).is_file()]
    if missing:
        logger.warning("book_assets: %s missing from %s; run scripts/fetch_widget_js.sh "
                       "(without them widgets and equations do not render offline)", ", ".join(missing), vendor)
    if vendor.is_dir():
        config.html_static_path = [*config.html_static_path, str(vendor)]


def copy_plotly(app: Sphinx, exception: Exception | None) -> None:
    if exception is None and app.builder.format == "html":
        target = Path(app.outdir) / "_static" / "plotly.min.js"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(plotly_js(), target)


def unique_scripts(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    """Drop repeated ``<script>`` entries (same file or inline body, same attributes) from a page."""
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    unique = []
    for js in scripts:
        key = (getattr(js, "filename", None) or "", tuple(sorted((k, str(v)) for k, v in getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_js_file("plotly.min.js", priority=200)  # before require.js (priority 500), see above
    app.connect("config-inited", serve_vendor)
    app.connect("build-finished", copy_plotly)
    app.connect("html-page-context", unique_scripts, priority=900)  # after extensions that add page scripts
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
