"""`driftline crds` writes the Helm chart's crds/ as well as crds/, and `--check` fails
when either is out of date: the chart's CRDs are never edited by hand."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from driftline.api.crdgen import all_crds, render_yaml
from driftline.api.kopfpeering import peering_crds
from driftline.cli.crds import chart_crds, crds, stale_files
from tests.install.helm_support import CHART, ROOT


def test_the_committed_chart_crds_are_current():
    assert stale_files(CHART / "crds") == []
    assert sorted(p.name for p in (CHART / "crds").glob("*.yaml")) == sorted(chart_crds())
    # the chart's Driftline CRDs are byte for byte those of crds/
    for name in all_crds():
        assert (CHART / "crds" / name).read_text() == (ROOT / "crds" / name).read_text()


def test_the_peering_crds_are_kopfs_kinds():
    kinds = {d["spec"]["names"]["kind"]: d["spec"]["scope"] for d in peering_crds().values()}
    assert kinds == {"ClusterKopfPeering": "Cluster", "KopfPeering": "Namespaced"}
    assert all(d["spec"]["group"] == "kopf.dev" for d in peering_crds().values())


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory laid out as a checkout: crds/ and a chart with its Chart.yaml."""
    (tmp_path / "charts" / "driftline").mkdir(parents=True)
    shutil.copy(CHART / "Chart.yaml", tmp_path / "charts" / "driftline" / "Chart.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_crds_writes_both_directories_in_a_checkout(checkout: Path):
    result = CliRunner().invoke(crds, [])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (checkout / "crds").glob("*.yaml")) == sorted(all_crds())
    chart = checkout / "charts" / "driftline" / "crds"
    assert sorted(p.name for p in chart.glob("*.yaml")) == sorted(chart_crds())
    result = CliRunner().invoke(crds, ["--check"])
    assert result.exit_code == 0, result.output
    assert "charts/driftline/crds: up to date" in result.output


def test_check_fails_when_the_chart_crds_are_stale_or_hold_a_stranger(checkout: Path):
    assert CliRunner().invoke(crds, []).exit_code == 0
    chart = checkout / "charts" / "driftline" / "crds"
    edited = chart / "modeldeployments.driftline.io.yaml"
    edited.write_text(edited.read_text().replace("Canary", "Kanary"))
    result = CliRunner().invoke(crds, ["--check"])
    assert result.exit_code == 1
    assert "crds: up to date" in result.output  # crds/ itself is reported as current
    assert (
        f"out of date in {Path('charts/driftline/crds')}: modeldeployments.driftline.io.yaml"
        in (result.output)
    )
    edited.write_text(render_yaml(chart_crds()[edited.name]))
    (chart / "old.driftline.io.yaml").write_text("# left behind\n")
    result = CliRunner().invoke(crds, ["--check"])
    assert result.exit_code == 1
    assert "old.driftline.io.yaml (not generated: remove it)" in result.output


def test_a_missing_peering_crd_in_the_chart_is_stale(checkout: Path):
    assert CliRunner().invoke(crds, []).exit_code == 0
    (checkout / "charts" / "driftline" / "crds" / "kopfpeerings.kopf.dev.yaml").unlink()
    result = CliRunner().invoke(crds, ["--check", "charts/driftline/crds"])
    assert result.exit_code == 1 and "kopfpeerings.kopf.dev.yaml" in result.output


def test_without_a_chart_only_crds_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(crds, []).exit_code == 0
    assert not (tmp_path / "charts").exists()
    assert sorted(p.name for p in (tmp_path / "crds").glob("*.yaml")) == sorted(all_crds())
