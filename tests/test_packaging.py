"""shaders/ lives at the top level of the repository but must ship inside the wheel."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_contains_every_shader(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), str(ROOT)], check=True, timeout=300)
    wheel = next(tmp_path.glob("vkbackprop-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {"vkbackprop/shaders_data/" + p.relative_to(ROOT / "shaders").as_posix()
                for p in (ROOT / "shaders").rglob("*") if p.suffix in (".comp", ".glsl")}
    assert expected and expected <= names, sorted(expected - names)


def test_every_subpackage_is_listed_for_the_wheel():
    """pyproject lists packages by hand: a new subpackage left out would be missing from the wheel."""
    import tomllib
    root = Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(root).parts) for p in (root / "vkbackprop").rglob("__init__.py")}
    assert found <= listed, f"not in pyproject's packages: {sorted(found - listed)}"
