"""The book's repository URL, set once in ``_config.yml`` (``repository.url``), and what derives from it.

The launch buttons (Binder, Colab, the repository link) are made by Jupyter Book from that key.
The Colab cell of each notebook cannot import this package (it installs it), so it carries the URL
as text: :func:`colab_cell` writes that text from the URL, the tests check every notebook's cell
(and the README's install line) against it, and ``python -m resnet_nb.book_meta sync book/*.ipynb``
rewrites the cells after the URL changes.

One install line everywhere (README, introduction page, the Colab cell): clone the repository,
then ``pip install -e "<clone>[book]"``. Where torch is already installed (Colab) that reuses it.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

CLONE_DIR = "/content/resnet-book"  # where the Colab cell clones the repository
COLAB_MARKER = "# Colab only:"  # first line of the Colab cell; how the cell is found in a notebook

_URL = re.compile(r"^https://github\.com/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


def repository_url(config: Path) -> str:
    """``repository.url`` of the book's ``_config.yml`` (a ``https://github.com/<owner>/<name>`` URL)."""
    import yaml  # a dependency of jupyter-book: this helper is for the book's tooling, not for training

    data = yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}
    url = str((data.get("repository") or {}).get("url", "")).rstrip("/")
    if not _URL.match(url):
        raise ValueError(f"{config}: repository.url must look like https://github.com/<owner>/<name>, got {url!r}")
    return url


def install_line(url: str, clone: str = "resnet-book") -> str:
    """The shell line that installs the package (and its book extras) from a clone, as on Colab."""
    target = clone if clone.startswith("/") else f"./{clone}"
    return f'git clone --depth 1 {url} {clone} && pip install -e "{target}[book]"'


def colab_cell(url: str) -> str:
    """The source of the notebooks' first code cell (tagged ``remove-cell``): on Colab, clone + install."""
    return "\n".join([
        f"{COLAB_MARKER} fetch the book's code and records (does nothing elsewhere).",
        "import sys",
        "",
        'if "google.colab" in sys.modules:',
        "    import os",
        "    import subprocess",
        "",
        f'    if not os.path.isdir("{CLONE_DIR}"):',
        f'        subprocess.run(["git", "clone", "--depth", "1", "{url}", "{CLONE_DIR}"], check=True)',
        f'    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "{CLONE_DIR}[book]"], check=True)',
        f'    sys.path.insert(0, "{CLONE_DIR}")',
        f'    os.chdir("{CLONE_DIR}/book")',
    ])


def colab_cell_index(notebook: dict) -> int | None:
    """Index of the Colab cell in a notebook (the code cell whose source starts with the marker), or None."""
    for i, cell in enumerate(notebook.get("cells", [])):
        if cell.get("cell_type") == "code" and "".join(cell.get("source", "")).startswith(COLAB_MARKER):
            return i
    return None


def sync_colab_cell(path: Path, url: str) -> bool:
    """Rewrite the Colab cell of the notebook at ``path`` for ``url``; True when the file changed."""
    notebook = json.loads(Path(path).read_text(encoding="utf-8"))
    index = colab_cell_index(notebook)
    if index is None:
        raise ValueError(f"{path}: no Colab cell (a code cell starting with {COLAB_MARKER!r})")
    cell = notebook["cells"][index]
    want = colab_cell(url)
    if "".join(cell["source"]) == want:
        return False
    cell["source"] = want.splitlines(keepends=True)
    Path(path).write_text(json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    return True


def main(argv: list[str]) -> int:
    """``python -m resnet_nb.book_meta sync NOTEBOOK...`` (run from the repository root)."""
    if len(argv) < 2 or argv[0] != "sync":
        print("usage: python -m resnet_nb.book_meta sync book/*.ipynb   (rewrites each Colab cell from _config.yml)",
              file=sys.stderr)
        return 2
    try:
        url = repository_url(Path("_config.yml"))
        changed = [p for p in argv[1:] if sync_colab_cell(Path(p), url)]
    except (OSError, ValueError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(changed)} notebook(s) updated for {url}" + (": " + ", ".join(changed) if changed else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
