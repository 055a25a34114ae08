"""Files into a container's data dir (the agent's --data-dir), running or stopped."""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any

DATA_DIR = "/data"  # the agent's --data-dir inside the container


def put_file(client: Any, name: str, src: Path, dest_name: str) -> str:
    """Copy ``src`` into the container's data dir as ``inbox/<dest_name>`` (works while the
    container is stopped too); the path relative to the data dir."""
    import tempfile

    rel = f"inbox/{dest_name}"
    with tempfile.TemporaryFile() as tmp:
        with tarfile.open(fileobj=tmp, mode="w") as tar:
            d = tarfile.TarInfo("inbox")
            d.type = tarfile.DIRTYPE
            d.mode = 0o755
            tar.addfile(d)
            info = tar.gettarinfo(str(src), arcname=rel)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            with open(src, "rb") as fh:
                tar.addfile(info, fh)
        tmp.seek(0)
        client.api.put_archive(name, DATA_DIR, tmp)
    return rel
