"""docs/weights.md names every file the shipped templates load, under the name and folder they load it from.

The table is scripts/exemplar_dev/model_files.py; a user who follows the guide must end up with those exact names.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from exemplar_dev import model_files

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "weights.md"
HF_REPO = re.compile(r"^https://huggingface\.co/([^/]+/[^/]+)/resolve/")

FILES = {f.name: f for f in model_files.MODEL_FILES + model_files.DOWNLOADS}


@pytest.fixture(scope="module")
def guide() -> str:
    return GUIDE.read_text(encoding="utf-8")


def test_tables_are_not_empty():
    assert len(model_files.MODEL_FILES) >= 8
    assert any(f.url and HF_REPO.match(f.url) for f in model_files.DOWNLOADS)


@pytest.mark.parametrize("name", sorted(FILES))
def test_guide_names_file_with_its_folder(guide, name):
    entry = FILES[name]
    lines = [line for line in guide.splitlines() if f"`{name}`" in line]
    assert lines, f"docs/weights.md never names `{name}` ({entry.what})"
    assert any(f"`{entry.directory}`" in line for line in lines), (
        f"docs/weights.md names `{name}` but no line naming it gives its folder `{entry.directory}`"
    )


@pytest.mark.parametrize("name", sorted(n for n, f in FILES.items() if f.url and "huggingface.co" in f.url))
def test_guide_links_each_download_repository(guide, name):
    url = FILES[name].url
    match = HF_REPO.match(url)
    assert match, f"{name}: a Hugging Face url not of the form https://huggingface.co/<owner>/<repo>/resolve/...: {url}"
    repo = match.group(1)
    assert f"(https://huggingface.co/{repo})" in guide, f"{name}: docs/weights.md does not link the repository {repo}"


@pytest.mark.parametrize("name", sorted(f.name for f in model_files.MODEL_FILES if f.url))
def test_guide_saves_each_download_under_the_template_name(guide, name):
    # The first column of the guide's download tables is the name to save as; a name only in the publisher column
    # (e.g. "saved under a shorter name") would leave the template's loader without its file.
    assert any(line.startswith(f"| `{name}` |") for line in guide.splitlines()), (
        f"docs/weights.md has no table row whose save-as column is `{name}`"
    )
