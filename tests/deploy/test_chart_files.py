"""What the chart carries of the repository: copies, not symlinks (Helm warns
about every symlink and a packaged chart must hold the bytes), kept the same
as their originals; the README's values table, kept the same as what
helm-docs makes of values.yaml; the schema's quantity grammar, the webhook's."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path


from tests.deploy.render import CHART, REPO, binary
from tests.helpers import cannot_run

# Chart file -> its original in the repository.
COPIES = {
    **{f"files/policies/{p.name}": f"policies/{p.name}" for p in (REPO / "policies").glob("*.yaml")},
    "files/monitoring/dashboard.json": "manifests/components/monitoring/dashboard.json",
    "files/monitoring/prometheusrule.yaml": "manifests/components/monitoring/prometheusrule.yaml",
}


def test_no_symlinks_in_the_chart() -> None:
    links = [str(p.relative_to(CHART)) for p in CHART.rglob("*") if p.is_symlink()]
    assert not links, f"symlinks in the chart (copy the files instead): {links}"


def test_the_copies_match_their_originals() -> None:
    assert len(COPIES) >= 4
    stale = [c for c, o in COPIES.items() if (CHART / c).read_bytes() != (REPO / o).read_bytes()]
    assert not stale, f"chart copies out of date (cp the originals over them): {stale}"
    shipped = {str(p.relative_to(CHART)) for d in ("files/policies", "files/monitoring") for p in (CHART / d).iterdir()}
    assert shipped == set(COPIES), f"chart files without an original, or originals not copied: {shipped ^ set(COPIES)}"


def test_the_schema_quantity_is_the_webhooks_grammar() -> None:
    from webhook.quantity import GRAMMAR

    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["definitions"]["quantity"]["pattern"] == GRAMMAR.pattern


def test_the_readme_values_table_is_current(tmp_path: Path) -> None:
    exe = binary("helm-docs")
    if exe is None:
        cannot_run("no helm-docs: run scripts/helm-bin (needs Go) to build it from the Go module proxy")
    copy = tmp_path / "charts" / "model-cache"
    shutil.copytree(CHART, copy)
    proc = subprocess.run([exe, "--chart-search-root", str(tmp_path / "charts")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (copy / "README.md").read_text() == (CHART / "README.md").read_text(), (
        "charts/model-cache/README.md is stale: run `helm-docs --chart-search-root charts`")
