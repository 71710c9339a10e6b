"""statistics_backend="auto": the estimate from the Parquet footer, the budget, the choice and its decision."""

from __future__ import annotations

import re

import pytest

from kfp_tabular.components.common.errors import ConfigError, DataError
from kfp_tabular.components.data_processing.synthetic_data import core as synthetic
from kfp_tabular.components.data_processing.validate import backend, core, statistics
from kfp_tabular.components.data_processing.validate.request import ValidateRequest
from tests.support.statistics import feature_stats


def test_estimate_grows_with_the_rows(tmp_path):
    small = synthetic.write(synthetic.generate(2_000, 1), tmp_path / "small.parquet")
    large = synthetic.write(synthetic.generate(20_000, 1), tmp_path / "large.parquet")
    data_small = backend.in_memory_bytes(small) - backend.TFDV_BASE_BYTES
    data_large = backend.in_memory_bytes(large) - backend.TFDV_BASE_BYTES
    # 12 columns counted at >= 8 bytes a row each, times the measured factor.
    assert data_small >= backend.IN_MEMORY_FACTOR * 12 * 8 * 2_000
    assert 8 < data_large / data_small < 12


def test_estimate_names_a_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope.parquet: Parquet data file not found"):
        backend.in_memory_bytes(str(tmp_path / "nope.parquet"))


def test_budget_from_the_request_the_cgroup_or_the_available_memory(tmp_path):
    assert backend.memory_budget(300) == (300 << 20, "memory_budget_mb")
    limit, meminfo = tmp_path / "memory.max", tmp_path / "meminfo"
    limit.write_text(str(6 << 30))
    meminfo.write_text("MemTotal: 24000000 kB\nMemAvailable:   8388608 kB\n")
    budget, source = backend.memory_budget(0, (str(limit),), str(meminfo))
    assert budget == 3 << 30 and source.startswith("50% of the container's limit") and "6.0 GB" in source
    limit.write_text("max")  # cgroup v2 without a limit: the machine's available memory
    assert backend.memory_budget(0, (str(limit),), str(meminfo)) == (
        4 << 30,
        "50% of the machine's available memory (8.0 GB)",
    )


def test_explicit_backends_pass_through_and_a_remote_runner_chooses_beam(tmp_path):
    assert backend.choose("dataframe", ["/nowhere.parquet"]) == backend.Choice("dataframe")
    chosen = backend.choose("auto", ["/nowhere.parquet"], beam_pipeline_args=["--runner=DataflowRunner"])
    assert chosen.backend == "beam" and "DataflowRunner" in chosen.decision.reason


def test_small_budget_chooses_beam_with_the_same_statistics(tmp_path):
    path = synthetic.write(synthetic.generate(3_000, 2), tmp_path / "data.parquet")
    roomy = backend.choose("auto", [path], budget_mb=64 << 10)
    tight = backend.choose("auto", [path], budget_mb=1)
    assert roomy.backend == "dataframe" and tight.backend == "beam"
    assert tight.decision.subject == "statistics_backend" and tight.decision.action == "beam"
    assert re.fullmatch(
        r"statistics: beam \(streaming, in-process FnApiRunner\): ~[\d.]+ [MG]B in memory estimated > budget 1 MB "
        r"\(memory_budget_mb\)",
        tight.decision.reason,
    )
    in_memory = statistics.generate_statistics(path, roomy.backend)
    streamed = statistics.generate_statistics(path, tight.backend)
    assert feature_stats(in_memory) == feature_stats(streamed)

    def means(stats):
        return {f.path.step[0]: f.num_stats.mean for f in stats.datasets[0].features if f.HasField("num_stats")}

    assert means(in_memory) == pytest.approx(means(streamed))


def test_validate_records_the_choice(tmp_path):
    train = synthetic.write(synthetic.generate(1_000, 1), tmp_path / "train.parquet")
    evaluation = synthetic.write(synthetic.generate(1_000, 2), tmp_path / "eval.parquet")
    request = ValidateRequest(synthetic.LABEL, memory_budget_mb=1, fail_on_anomalies=False)
    report = tmp_path / "report.md"
    result = core.validate(train, evaluation, request, anomalies_report_path=str(report))
    assert result.statistics_backend == "beam"
    assert [d.action for d in result.decisions] == ["beam"]
    assert result.as_dict()["decisions"][0]["subject"] == "statistics_backend"
    assert "Statistics backend: beam (statistics: beam (streaming" in report.read_text()


@pytest.mark.parametrize("bad", [-1, 1.5, True, "1"])
def test_memory_budget_is_checked(bad):
    with pytest.raises(ConfigError, match="memory_budget_mb: expected a whole number of MB >= 0"):
        ValidateRequest("label", memory_budget_mb=bad)


def test_auto_is_the_default():
    assert ValidateRequest("label").statistics_backend == "auto"
