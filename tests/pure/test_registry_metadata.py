"""What the Comfy registry reads (pyproject.toml [project] / [tool.comfy]) and what `comfy node publish` would put
in the archive: the git-tracked files minus the .comfyignore patterns (comfy-cli's zip_files), computed here
without comfy-cli."""

import re
import struct
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# sha256 of the FSF's GPL-3.0 text (gpl-3.0.txt): the licence is copied verbatim
GPL3_SHA256 = "3972dc9744f6499f0f9b2dbf76696f2ae7ad8af9b23dde66d6af86c9dfb36986"
SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
# comfy-cli's accepted forms (registry/config_parser.py)
OS_PREFIXES = ("Microsoft", "POSIX", "MacOS", "OS Independent")
ACCELERATORS = {
    "GPU :: NVIDIA CUDA",
    "GPU :: AMD ROCm",
    "GPU :: Intel Arc",
    "NPU :: Huawei Ascend",
    "GPU :: Apple Metal",
}
VERSION_SPEC = re.compile(r"^(?:(==|>=|<=|!=|~=|>|<|<>|=)\s*)?(\d+\.\d+\.\d+(?:-[a-zA-Z0-9]+)?)?$")


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def ignore_patterns() -> list[str]:
    lines = (ROOT / ".comfyignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    """gitwildmatch for the pattern forms .comfyignore uses: `dir/` (a folder anywhere) and a plain name."""
    parts = path.split("/")
    for pattern in patterns:
        if any(ch in pattern for ch in "*?[!\\") or pattern.strip("/").count("/"):
            raise AssertionError(f".comfyignore pattern {pattern!r} needs a real gitwildmatch; extend this test")
        name = pattern.rstrip("/")
        if pattern.endswith("/") and name in parts[:-1]:
            return True
        if not pattern.endswith("/") and name in parts:
            return True
    return False


def tracked_files() -> list[str]:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: comfy-cli archives git-tracked files")
    return [f for f in out.splitlines() if f.strip()]


def archive_files() -> list[str]:
    patterns = ignore_patterns()
    return [f for f in tracked_files() if not ignored(f, patterns)]


def test_pattern_matcher_follows_gitwildmatch_for_the_forms_used():
    assert ignored("tests/pure/x.py", ["tests/"]) and ignored("a/tests/x.py", ["tests/"])
    assert not ignored("tests", ["tests/"])  # a file named like the folder is not a folder
    assert ignored("Makefile", ["Makefile"]) and not ignored("nodes/x.py", ["tests/", "Makefile"])
    with pytest.raises(AssertionError, match="gitwildmatch"):
        ignored("x.py", ["*.py"])


def test_project_fields_the_registry_reads():
    project = pyproject()["project"]
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]*(?:[-_.][A-Za-z0-9]+)*", project["name"]) and len(project["name"]) < 100
    assert SEMVER.match(project["version"]) and tuple(map(int, project["version"].split("."))) > (0, 1, 0)
    assert project["description"].strip()
    assert project["license"] == {"file": "LICENSE"}
    classifiers = project["classifiers"]
    assert "License :: OSI Approved :: GNU General Public License v3 or later (GPLv3+)" in classifiers
    oses = [c.removeprefix("Operating System :: ") for c in classifiers if c.startswith("Operating System :: ")]
    assert oses and all(o.startswith(OS_PREFIXES) for o in oses)
    envs = [c.removeprefix("Environment :: ") for c in classifiers if c.startswith("Environment ::")]
    assert all(e in ACCELERATORS for e in envs)
    for label, url in project.get("urls", {}).items():
        assert re.match(r"^https://\S+$", url), f"[project.urls] {label} is not an https address: {url!r}"


def test_tool_comfy_fields():
    project, comfy = pyproject()["project"], pyproject()["tool"]["comfy"]
    assert comfy["PublisherId"].strip()
    assert comfy["DisplayName"].strip() and comfy["DisplayName"] != project["name"]
    assert all(VERSION_SPEC.match(part.strip()) for part in comfy["requires-comfyui"].split(","))
    assert comfy["includes"] == []  # nothing force-included past .comfyignore
    icon = ROOT / comfy["Icon"]
    head = icon.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    assert width == height and 64 <= width <= 1024


def test_license_is_the_verbatim_gpl3_text():
    import hashlib

    assert hashlib.sha256((ROOT / "LICENSE").read_bytes()).hexdigest() == GPL3_SHA256


def test_changelog_tops_with_the_project_version():
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    versions = re.findall(r"^## (\d+\.\d+\.\d+)", text, flags=re.M)
    assert versions[0] == pyproject()["project"]["version"]
    assert versions == sorted(versions, key=lambda v: tuple(map(int, v.split("."))), reverse=True)


def test_archive_holds_runtime_files_only():
    files = archive_files()
    tops = {f.split("/")[0] for f in files}
    assert not tops & {"tests", "bench", "scripts", ".ci", "Makefile", "requirements-dev.txt"}
    for needed in ("__init__.py", "pyproject.toml", "requirements.txt", "README.md", "LICENSE", "CHANGELOG.md"):
        assert needed in files
    assert pyproject()["tool"]["comfy"]["Icon"] in files
    assert any(f.startswith("workflows/") and f.endswith(".json") for f in files)
    assert any(f.startswith("web/docs/") and f.endswith(".md") for f in files)
    runtime = [f for f in tracked_files() if f.startswith(("nodes/", "models/", "web/", "workflows/", "docs/"))]
    assert runtime and [f for f in runtime if f not in files] == []


def test_runtime_code_needs_nothing_left_out():
    files = archive_files()
    left_out = ("scripts", "tests", "bench", "exemplar_dev")
    for f in files:
        if not f.endswith(".py"):
            continue
        code = (ROOT / f).read_text(encoding="utf-8")
        for name in left_out:
            assert not re.search(rf"^\s*(from|import)\s+\.*{name}\b", code, flags=re.M), f"{f} imports {name}"


# Literals that scanners managers run (nodesafe 0.6.0's high-severity code-execution, process and decoding
# patterns) read as code execution wherever they occur, even inside `.eval()` or `re.compile(`; one of them in the
# published files turns the verdict into "malicious / do_not_install" (docs/development.md, "Publishing").
SCANNER_HIGH_LITERALS = (
    "eval(", "exec(", "compile(", "__import__(", "importlib.import_module", "execfile(", "globals()[", "locals()[",
    "subprocess.", "os.system(", "os.popen(", "shell=True", "pty.spawn",
    "base64.b64decode", "codecs.decode", "binascii.unhexlify", "bytes.fromhex", "marshal.loads", "pickle.loads",
    "pickle.Unpickler", "zlib.decompress",
)  # fmt: skip


def test_published_files_hold_no_literal_scanners_read_as_code_execution():
    hits = []
    for f in archive_files():
        if f.endswith((".py", ".js", ".md", ".txt", ".toml", ".json")):
            text = (ROOT / f).read_text(encoding="utf-8", errors="replace")
            hits += [f"{f}: {literal}" for literal in SCANNER_HIGH_LITERALS if literal in text]
    assert hits == []
