"""Regenerate the Python stubs in modelplane/proto/ from the contracts in proto/.

protoc writes absolute imports named after the .proto paths ("from modelplane.v1 import
resources_pb2"); our stubs live in the package modelplane.proto, so every generated
import between our own files is rewritten to a relative one. `--check` regenerates into a
temporary folder and fails when the committed stubs differ (CI runs it through make test).
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "modelplane" / "proto"
HEADER = '"""Generated from proto/ by tools/gen_proto.py (make gen). Do not edit."""\n'

# "from modelplane.v1 import x_pb2 as y" / "import modelplane.v1.x_pb2" -> relative form.
_FROM_IMPORT = re.compile(r"^from (?:modelplane\.v1|inference) import (\w+_pb2)", re.M)
_PLAIN_IMPORT = re.compile(r"^import (?:modelplane\.v1|inference)\.(\w+_pb2)$", re.M)


def _generate(out: Path) -> None:
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    staging = out / "_staging"
    staging.mkdir(parents=True)
    import grpc_tools

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    bindir = Path(sys.executable).parent
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{well_known}",
        f"--python_out={staging}",
        f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
        # mypy-protobuf writes typed .pyi stubs for the messages and the gRPC services.
        f"--mypy_out={staging}",
        f"--mypy_grpc_out={staging}",
        f"--grpc_python_out={staging}",
        *protos,
    ]
    # Run protoc in a child process: its plugins chat on stderr, which we show only on failure.
    done = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", *args[1:]], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"protoc failed:\n{done.stderr}")
    for produced in sorted(staging.rglob("*.py*")):
        text = _FROM_IMPORT.sub(r"from . import \1", produced.read_text())
        text = _PLAIN_IMPORT.sub(r"from . import \1", text)
        text = (
            re.sub(r"\b(?:modelplane\.v1|inference)\.(\w+_pb2)\.", r"\1.", text)
            if produced.suffix == ".pyi"
            else text
        )
        (out / produced.name).write_text(HEADER + text if produced.suffix == ".py" else text)
    shutil.rmtree(staging)
    (out / "__init__.py").write_text(
        '"""Generated protobuf and gRPC stubs; the contracts are in proto/."""\n'
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the committed stubs are stale")
    opts = parser.parse_args()
    if not opts.check:
        if OUT_DIR.exists():
            shutil.rmtree(OUT_DIR)
        OUT_DIR.mkdir(parents=True)
        _generate(OUT_DIR)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        _generate(fresh)
        committed = {p.name for p in OUT_DIR.iterdir() if p.is_file()} if OUT_DIR.exists() else set()
        generated = {p.name for p in fresh.iterdir() if p.is_file()}
        stale = sorted(committed ^ generated)
        stale += [n for n in sorted(committed & generated) if not filecmp.cmp(OUT_DIR / n, fresh / n, False)]
        if stale:
            print(
                f"modelplane/proto is stale ({', '.join(stale)}): run `make gen` and commit", file=sys.stderr
            )
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
