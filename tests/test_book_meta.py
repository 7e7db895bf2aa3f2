"""The repository URL is set once (_config.yml) and used by the Colab cell of every notebook and the README;
the Colab install works in a fresh environment that already has torch, and CIFAR-10 then comes from torchvision."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest
import yaml

from resnet_nb import book_meta

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "_config.yml"


def _toc_notebooks() -> list[Path]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]] + [c["file"] for c in toc.get("chapters", [])]
    return [ROOT / f"{f}.ipynb" for f in files]


def test_repository_url_is_read_from_the_config(tmp_path: Path) -> None:
    assert book_meta.repository_url(CONFIG).startswith("https://github.com/")
    bad = tmp_path / "_config.yml"
    bad.write_text("repository:\n  url: github.com/no-scheme\n", encoding="utf-8")
    with pytest.raises(ValueError, match="repository.url"):
        book_meta.repository_url(bad)


@pytest.mark.parametrize("notebook", _toc_notebooks(), ids=lambda p: p.stem)
def test_every_notebook_has_the_colab_cell_for_the_configured_url(notebook: Path) -> None:
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    index = book_meta.colab_cell_index(nb)
    assert index is not None, f"{notebook.name}: no Colab cell"
    cell = nb["cells"][index]
    assert "".join(cell["source"]) == book_meta.colab_cell(book_meta.repository_url(CONFIG)), (
        f"{notebook.name}: Colab cell differs from _config.yml; run python -m resnet_nb.book_meta sync book/*.ipynb")
    assert "remove-cell" in cell["metadata"].get("tags", [])


def test_readme_and_introduction_show_the_same_install_line() -> None:
    line = book_meta.install_line(book_meta.repository_url(CONFIG))
    assert line in (ROOT / "README.md").read_text(encoding="utf-8")
    intro = json.loads((ROOT / "book" / "01_introduction.ipynb").read_text(encoding="utf-8"))
    assert any(line in "".join(c["source"]) for c in intro["cells"] if c["cell_type"] == "markdown")


def test_sync_rewrites_the_colab_cell(tmp_path: Path) -> None:
    path = tmp_path / "nb.ipynb"
    shutil.copy(ROOT / "book" / "03_residual_blocks.ipynb", path)
    url = "https://github.com/someone/elsewhere"
    assert book_meta.sync_colab_cell(path, url) is True
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert "".join(nb["cells"][book_meta.colab_cell_index(nb)]["source"]) == book_meta.colab_cell(url)
    assert book_meta.sync_colab_cell(path, url) is False


def _clone_working_tree(dest: Path) -> None:
    """What a clone of this working tree holds (tracked + new, unignored files), committed in a fresh git repo."""
    listed = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run(git + args, cwd=dest, check=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is needed to emulate the Colab cell's clone")
@pytest.mark.slow
def test_colab_cell_installs_into_an_environment_with_torch_and_data_comes_from_torchvision(tmp_path: Path) -> None:
    """As on Colab: torch (and pandas, plotly, ipywidgets) are already there; the cell clones and pip-installs.

    The environment is a fresh venv whose only extra path is this interpreter's site-packages (a .pth file),
    the clone comes from this working tree, and RESNET_NB_DATA is unset: the package must pick torchvision's
    download, and offline it must say so in one line (not fall back to anything else).
    """
    origin = tmp_path / "origin"
    _clone_working_tree(origin)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "preinstalled.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    clone = tmp_path / "content" / "resnet-book"
    cell = book_meta.colab_cell(book_meta.repository_url(CONFIG))
    cell = cell.replace(book_meta.repository_url(CONFIG), origin.as_uri()).replace(book_meta.CLONE_DIR, str(clone))
    runner = textwrap.dedent("""
        import sys, types
        sys.modules["google.colab"] = types.ModuleType("google.colab")  # what the cell checks for
        exec(compile(open(sys.argv[1]).read(), "colab_cell", "exec"))
    """)
    (tmp_path / "cell.py").write_text(cell, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RESNET_NB_DATA", "VIRTUAL_ENV")}
    env["RESNET_NB_CACHE"] = str(tmp_path / "cache")
    done = subprocess.run([str(python), "-c", runner, str(tmp_path / "cell.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    probe = subprocess.run([str(python), "-c", "import resnet_nb, torch; from resnet_nb.data import resolve_source; "
                            "print(resnet_nb.__file__); print(torch.__file__); print(resolve_source())"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    package, torch_file, source = probe.stdout.split()
    assert Path(package).is_relative_to(clone)  # the editable install from the clone, not this checkout
    assert Path(torch_file).is_relative_to(sysconfig.get_paths()["purelib"])  # torch reused, not reinstalled
    assert source == "torchvision"
    data = subprocess.run([str(python), "-m", "resnet_nb", "data"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=900)
    if data.returncode == 0:  # online: torchvision downloaded the original batches
        assert "torchvision" in data.stdout
    else:  # offline: one clear line that names the torchvision download, no traceback
        assert "Traceback" not in data.stderr
        assert data.stderr.lower().startswith("error: torchvision could not download cifar-10"), data.stderr
        assert data.stderr.count("\n") == 1
