"""Images on the process node, which runs commands and not images.

A container without ``workingDir`` runs in one directory per image under the node's
workdir, standing in for the image's WORKDIR.  Loading an image (as ``kind load
docker-image`` does) makes that directory a symlink to a directory of the machine, so
that its files (a job author's ``app.py``) are where the image would have them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["image_dirname", "image_path", "load_image"]


def image_dirname(image: str | None) -> str:
    """A directory name for ``image``: one path component, never ``.`` or ``..``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", image or "process").strip(".") or "process"


def image_path(node_workdir: Path, image: str | None) -> Path:
    """Where the process node keeps the directory of ``image``."""
    return node_workdir / "images" / image_dirname(image)


def load_image(node_workdir: Path, image: str, directory: Path) -> Path:
    """Make ``directory`` the directory of ``image`` on the node; returns the link.

    Loading again replaces the link, as loading a rebuilt image replaces it.  Pods already
    running ``image`` keep the directory they started in.
    """
    target = Path(directory).resolve()
    if not target.is_dir():
        raise ValueError(f"cannot load image {image}: {directory} is not a directory")
    link = image_path(node_workdir, image)
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_dir() and not link.is_symlink():
        try:  # the empty directory a pod of the image got before it was loaded
            link.rmdir()
        except OSError:
            raise ValueError(
                f"cannot load image {image}: its pods already wrote files in {link}"
            ) from None
    staged = link.with_name(f".{link.name}.loading")
    staged.unlink(missing_ok=True)
    staged.symlink_to(target, target_is_directory=True)
    os.replace(staged, link)  # atomic: a pod starting now sees the old or the new directory
    return link
