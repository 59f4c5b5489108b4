"""Registry from reference data: from-csv --skip-invalid, and `registry build` against the sandbox."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from connectors.registry import load_registry
from flows.cli import app
from sandbox.reference_data import reference_data_for
from sandbox.server import SandboxServer

FIXTURE = Path(__file__).parents[2] / "fixtures" / "nhs111" / "workbook-sample.csv"
TEMPLATE = "https://host/{ods}/STU3/1/gpconnect"


def test_from_csv_skip_invalid_imports_good_rows_and_reports_the_rest(tmp_path: Path) -> None:
    out = tmp_path / "r.yaml"
    args = ["registry", "from-csv", str(FIXTURE), "-o", str(out), "--service-root-template", TEMPLATE]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 1 and not out.exists()
    assert "line 3 (J82002) field list_size" in refused.output
    assert "line 5 (E85001) field nhs111_provider" in refused.output
    done = CliRunner().invoke(app, [*args, "--skip-invalid"])
    assert done.exit_code == 0, done.output
    registry = load_registry(out).by_ods()
    assert set(registry) == {"J82001", "J82003"}
    assert registry["J82001"].accepts_111_booking and registry["J82001"].nhs111_provider_ods == "RYE"
    assert not registry["J82003"].accepts_111_booking and registry["J82003"].sub_icb_code == "10V"


def test_bad_service_root_template_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "registry",
            "from-csv",
            str(FIXTURE),
            "-o",
            str(tmp_path / "r.yaml"),
            "--service-root-template",
            "https://host/{0}/x",
            "--skip-invalid",
        ],
    )
    assert result.exit_code == 1 and "{0}" in result.output and "Traceback" not in result.output


def test_build_against_sandbox_then_a_month_later_writes_the_diff(tmp_path: Path) -> None:
    with SandboxServer() as sandbox:
        reference = reference_data_for(sandbox.state)
        (tmp_path / "hubs.yaml").write_text(reference.hub_file())
        base = sandbox.base_url
        out = tmp_path / "registry.yaml"
        args = [
            "registry",
            "build",
            "--icb",
            "QRL",
            "-o",
            str(out),
            "--ord-url",
            f"{base}/ORD/2-0-0",
            "--sds-url",
            f"{base}/spine-directory/FHIR/R4",
            "--list-sizes",
            f"{base}/_reference/gp-reg-pat-prac-all.csv",
            "--nhs111-csv",
            f"{base}/_reference/gp-practices-111-booking.csv",
            "--hubs",
            str(tmp_path / "hubs.yaml"),
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
        reference.throttle(3)
        first = CliRunner().invoke(app, args)
        assert first.exit_code == 0, first.output
        assert reference.throttled == 3
        built = load_registry(out)
        served = sandbox.registry.by_ods()
        for practice in built.practices:
            assert practice.provider_asid == served[practice.ods_code].provider_asid
            assert practice.service_root == served[practice.ods_code].service_root
        assert {p.icb_code for p in built.practices if p.kind == "practice"} == {"QRL"}
        codes = sorted(p.ods_code for p in built.practices if p.kind == "practice")
        reference.set_list_size(codes[0], 99_999)
        reference.close_practice(codes[1], successor=codes[2])
        second = CliRunner().invoke(app, args)
        assert second.exit_code == 0, second.output
        diff = json.loads(out.with_suffix(".diff.json").read_text())
        assert diff["merged"] == [{"ods_code": codes[1], "into": codes[2]}]
        assert {
            "ods_code": codes[0],
            "field": "list_size",
            "before": served[codes[0]].list_size,
            "after": 99_999,
        } in diff["changed"]
