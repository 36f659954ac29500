"""The SDK as its users get it: `python -m build` makes a typed wheel with the `mittis` command, and in a fresh
virtualenv `pip install ./sdk/python` followed by the README's code, as written, works against the real server."""

import os
from pathlib import Path
import re
import subprocess
import sys
import zipfile

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "sdk/python/README.md"


def readme_python() -> str:
    """Every ```python block of the SDK's README, in order, as one program."""
    return "\n\n".join(re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S))


def test_python_m_build_makes_a_typed_wheel_with_the_mittis_command(tmp_path):
    subprocess.run([sys.executable, "-m", "build", "--outdir", tmp_path, ROOT / "sdk/python"], check=True,
                   capture_output=True, timeout=300)

    wheel = next(tmp_path.glob("mittis_sdk-*-py3-none-any.whl"))
    assert next(tmp_path.glob("mittis_sdk-*.tar.gz"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(name for name in names if name.endswith(".dist-info/entry_points.txt"))
        metadata = archive.read(next(name for name in names if name.endswith(".dist-info/METADATA"))).decode()
        assert "mittis = mittis_sdk.cli:main" in archive.read(info).decode()
    assert "mittis_sdk/py.typed" in names and "mittis_sdk/__init__.py" in names
    assert not any(name.startswith(("mittis/", "messaging/", "tests/")) for name in names)
    assert re.search(r"^Requires-Dist: httpx", metadata, re.M) and re.search(r"^Requires-Dist: pydantic", metadata, re.M)


def test_the_readme_works_as_written_after_pip_install(tmp_path, sdk_key, server_url, worker):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=120)
    installed = subprocess.run([venv / "bin/pip", "install", "--quiet", "./sdk/python"], cwd=ROOT,
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    assert "pip install ./sdk/python" in README.read_text()

    ran = subprocess.run([venv / "bin/python", "-c", readme_python()], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120, env={**os.environ, "MITTIS_API_KEY": sdk_key, "MITTIS_BASE_URL": server_url,
                                           "PYTHONPATH": ""})

    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert re.fullmatch(r"msg_\w+ queued 1 0\.008", lines[0])
    assert lines[1].startswith("delivered 20") and ["1 message.queued", "2 message.sent", "3 message.delivered"] == lines[2:5]
    assert "inbound received" in lines and "undelivered unknown_subscriber" in lines
    assert "400 invalid_phone_number to" in lines
    assert (venv / "bin/mittis").exists()
