"""Images "loaded" into the process node: the directory a container of an image runs in."""

from pathlib import Path
from typing import Any, cast

import pytest

from shiftboss.testing.cluster import LocalCluster
from shiftboss.testing.node.images import image_dirname, load_image
from shiftboss.testing.node.pod import NodeContext

IMAGE = "ghcr.io/shiftboss/shiftboss-example-worker:0.1.0"


def node(workdir: Path) -> NodeContext:
    return NodeContext(cast(Any, None), "n", "127.0.0.1", workdir, {}, "", None)


def app_dir(tmp_path: Path, name: str = "app") -> Path:
    directory = tmp_path / name
    directory.mkdir()
    (directory / "app.py").write_text(f"NAME = {name!r}\n")
    return directory


@pytest.mark.parametrize(
    ("image", "name"),
    [
        (IMAGE, "ghcr.io_shiftboss_shiftboss-example-worker_0.1.0"),
        ("busybox@sha256:abc", "busybox_sha256_abc"),
        (None, "process"),
        ("..", "process"),
        ("../../etc", "_.._etc"),
    ],
)
def test_image_dirname_is_one_safe_path_component(image: str | None, name: str) -> None:
    assert image_dirname(image) == name


def test_a_loaded_image_runs_in_its_directory(tmp_path: Path) -> None:
    ctx = node(tmp_path / "node")
    load_image(ctx.workdir, IMAGE, app_dir(tmp_path))
    assert (ctx.image_dir(IMAGE) / "app.py").read_text() == "NAME = 'app'\n"
    # Other images keep a directory of their own, inside the node's workdir.
    other = ctx.image_dir("other:1")
    assert other.is_dir() and not other.is_symlink()
    assert not (other / "app.py").exists()


def test_loading_again_replaces_the_directory(tmp_path: Path) -> None:
    ctx = node(tmp_path / "node")
    load_image(ctx.workdir, IMAGE, app_dir(tmp_path, "v1"))
    load_image(ctx.workdir, IMAGE, app_dir(tmp_path, "v2"))
    assert (ctx.image_dir(IMAGE) / "app.py").read_text() == "NAME = 'v2'\n"
    assert [p.name for p in (ctx.workdir / "images").iterdir()] == [image_dirname(IMAGE)]


def test_loading_after_a_pod_ran_the_image(tmp_path: Path) -> None:
    ctx = node(tmp_path / "node")
    ctx.image_dir(IMAGE)  # an empty directory: replaced
    load_image(ctx.workdir, IMAGE, app_dir(tmp_path))
    assert (ctx.image_dir(IMAGE) / "app.py").is_file()

    (ctx.image_dir("busy:1") / "out.txt").write_text("a pod's file")
    with pytest.raises(ValueError, match=r"busy:1: its pods already wrote files in"):
        load_image(ctx.workdir, "busy:1", app_dir(tmp_path, "other"))
    assert (ctx.image_dir("busy:1") / "out.txt").is_file()


def test_only_a_directory_loads(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot load image x:1: .*missing is not a directory"):
        load_image(tmp_path / "node", "x:1", tmp_path / "missing")


def test_local_cluster_loads_its_images_before_the_node_starts(tmp_path: Path) -> None:
    directory = app_dir(tmp_path)
    cluster = LocalCluster(bin_dir=tmp_path, workdir=tmp_path / "w", images={IMAGE: directory})
    ctx = node(cluster.node_workdir)
    assert ctx.image_dir(IMAGE).resolve() == directory
    cluster.load_image("second:1", directory)
    assert ctx.image_dir("second:1").resolve() == directory
