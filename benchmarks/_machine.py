"""Machine and source facts printed by every benchmark, so runs can be compared."""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path

import babysit


def cpu_name() -> str:
    name = platform.processor()
    if name and name not in ("x86_64", "aarch64", "arm", "i386"):
        return name
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return name or platform.machine()


def source_digest() -> str:
    """A short hash of the babysit sources measured (the package may be edited between runs)."""
    digest = hashlib.sha256()
    roots = [Path(babysit.__file__).resolve().parent]
    try:
        import babysit.checks as catalog

        roots.append(Path(catalog.__file__).resolve().parent)
    except ImportError:
        pass
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
