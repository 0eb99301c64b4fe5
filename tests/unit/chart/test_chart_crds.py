"""The chart carries the generated CRDs (the same files as crds/) as templates, kept on
uninstall, so that `helm upgrade` delivers a changed schema."""

from __future__ import annotations

import copy

import yaml
from chart_render import CHART, ROOT, render

from shiftboss.api import crdgen

CRDS = ROOT / "crds"
CHART_CRDS = CHART / "files" / "crds"


def test_chart_copy_is_byte_for_byte_crds():
    names = sorted(path.name for path in CRDS.glob("*.yaml"))
    assert names == sorted(path.name for path in CHART_CRDS.glob("*.yaml"))
    for name in names:
        assert (CHART_CRDS / name).read_bytes() == (CRDS / name).read_bytes(), (
            f"{CHART_CRDS / name} differs from crds/{name}: run `make crds`"
        )
    assert crdgen.check_crds(CHART_CRDS) == []  # and both match the models


def test_rendered_crds_are_the_files_plus_labels_and_keep():
    rendered = {
        crd["metadata"]["name"]: crd for crd in render().of_kind("CustomResourceDefinition")
    }
    files = {
        crd["metadata"]["name"]: crd
        for crd in (yaml.safe_load(path.read_text()) for path in CRDS.glob("*.yaml"))
    }
    assert rendered.keys() == files.keys()
    for name, crd in rendered.items():
        meta, expected = crd["metadata"], copy.deepcopy(files[name])
        assert meta["annotations"] == {"helm.sh/resource-policy": "keep"}
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert expected["metadata"].pop("labels").items() <= meta["labels"].items()
        stripped = copy.deepcopy(crd)
        del stripped["metadata"]["annotations"], stripped["metadata"]["labels"]
        assert stripped == expected, f"{name}: rendered CRD differs from crds/"


def test_crds_can_be_left_out():
    assert not render(**{"crds.install": False}).of_kind("CustomResourceDefinition")
