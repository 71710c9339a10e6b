"""A corpus of broken and awkward inputs, walked through every step: none may train a model silently.

Each case is built from real public data (scikit-learn's bundled Wisconsin breast cancer and diabetes sets)
and ends one of two ways: refused, by the step named, with an error that names the file, column or
parameter and with nothing written by that step or after it; or trained with the decision that handled the
problem recorded (artifact metadata, hence the run's summary). The test prints how many cases it tried and
how each ended.
"""

from __future__ import annotations

import dataclasses
import gzip
import socket
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.support.chain import run_chain

pytestmark = pytest.mark.slow
LABEL = "target"


@dataclasses.dataclass
class Case:
    """One input and how it must end: ``refused`` at ``step`` naming ``names``, or ``decided`` with ``decisions``."""

    name: str
    build: Callable[[Path], tuple[str, str, dict]]
    step: str = ""
    names: tuple[str, ...] = ()
    decisions: tuple[tuple[str, str], ...] = ()


def cancer():
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).frame


def diabetes():
    from sklearn.datasets import load_diabetes

    return load_diabetes(as_frame=True).frame


def csv(frame, **params) -> Callable[[Path], tuple[str, str, dict]]:
    def build(tmp: Path):
        path = tmp / "data.csv"
        frame().to_csv(path, index=params.pop("index", False))
        return str(path), params.pop("label", LABEL), params

    return build


def parquet(frame, **params) -> Callable[[Path], tuple[str, str, dict]]:
    def build(tmp: Path):
        path = tmp / "data.parquet"
        frame().to_parquet(path, index=False)
        return str(path), params.pop("label", LABEL), params

    return build


def raw(name: str, content: Callable[[], bytes], **params) -> Callable[[Path], tuple[str, str, dict]]:
    def build(tmp: Path):
        path = tmp / name
        path.write_bytes(content())
        return str(path), params.pop("label", LABEL), params

    return build


def csv_text() -> str:
    return cancer().to_csv(index=False)


def edit_lines(edit: Callable[[list[str]], list[str]]) -> Callable[[], bytes]:
    return lambda: "\n".join(edit(csv_text().splitlines())).encode() + b"\n"


def with_column(name: str, values: Callable[[Any], Any]) -> Callable[[], Any]:
    def make():
        frame = cancer()
        frame[name] = values(frame)
        return frame

    return make


def with_values(column: str, rows: slice, value: Any) -> Callable[[], Any]:
    def make():
        frame = cancer().astype({column: object})
        frame.loc[frame.index[rows], column] = value
        return frame

    return make


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def parquet_bytes(frame) -> bytes:
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def datetime_column(frame):
    import pandas as pd

    return pd.date_range("2024-01-01", periods=len(frame), freq="6h")


def leaking_note(frame):
    return [
        f"pathology report {i}: the lesion was found {'benign' if t else 'malignant'} after review"
        for i, t in frame[LABEL].items()
    ]


CASES = [
    # --- unreadable sources: refused by ingest, naming the file -------------------------------------------------
    Case("empty file", raw("data.csv", lambda: b""), "ingest", ("data.csv",)),
    Case("binary garbage named .csv", raw("data.csv", lambda: bytes(range(256)) * 64), "ingest", ("data.csv",)),
    Case(
        "truncated gzip CSV",
        raw("data.csv.gz", lambda: truncated(gzip.compress(csv_text().encode()))),
        "ingest",
        ("data.csv.gz",),
    ),
    Case(
        "truncated Parquet",
        raw("data.parquet", lambda: truncated(parquet_bytes(cancer()))),
        "ingest",
        ("data.parquet",),
    ),
    Case("unsupported format", raw("data.xlsx", lambda: b"PK\x03\x04 not a workbook"), "ingest", ("data.xlsx",)),
    Case(
        "Latin-1 bytes in a UTF-8 CSV",
        raw("data.csv", lambda: csv_text().replace("mean radius", "rayon moyen \xe9").encode("latin-1")),
        "ingest",
        ("data.csv",),
    ),
    Case("no such file", lambda tmp: (str(tmp / "missing.csv"), LABEL, {}), "ingest", ("missing.csv",)),
    Case("a directory", lambda tmp: (str(tmp), LABEL, {}), "ingest", ("is a directory",)),
    Case(
        "refused connection",
        lambda tmp: (f"http://127.0.0.1:{closed_port()}/data.csv", LABEL, {}),
        "ingest",
        ("refused the connection",),
    ),
    # --- shape of the table ----------------------------------------------------------------------------------------
    Case("header only", raw("data.csv", lambda: csv_text().splitlines()[0].encode() + b"\n"), "ingest", ("rows",)),
    Case("ten rows", csv(lambda: cancer().head(10)), "ingest", ("too few rows", "min_rows")),
    Case(
        "rows with missing fields",
        raw("data.csv", edit_lines(lambda ls: ls[:40] + [ls[40].rsplit(",", 3)[0]] + ls[41:])),
        "ingest",
        ("data.csv", "41"),
    ),
    Case(
        "a row with extra fields",
        raw("data.csv", edit_lines(lambda ls: ls[:40] + [ls[40] + ",1,2"] + ls[41:])),
        "ingest",
        ("data.csv",),
    ),
    Case(
        "duplicate column names",
        raw("data.csv", edit_lines(lambda ls: [ls[0].replace("mean texture", "mean radius")] + ls[1:])),
        "ingest",
        ("mean radius",),
    ),
    Case("semicolons, not commas", raw("data.csv", lambda: csv_text().replace(",", ";").encode()), "ingest", (LABEL,)),
    Case("only the label", csv(lambda: cancer()[[LABEL]]), "ingest", ("feature",)),
    # --- the label ----------------------------------------------------------------------------------------------------
    Case("no such label column", csv(cancer, label="diagnosis"), "ingest", ("diagnosis",)),
    Case("label all missing", csv(with_values(LABEL, slice(None), None)), "ingest", (LABEL,)),
    Case("label a single class", csv(lambda: cancer().assign(target=1)), "ingest", (LABEL,)),
    Case(
        "positive_class not a class", csv(cancer, ingest__positive_class="maybe"), "ingest", ("positive_class", "maybe")
    ),
    Case(
        "label of whole-number floats",
        csv(lambda: cancer().assign(target=cancer()[LABEL].astype(float))),
        decisions=((LABEL, "classification"),),
    ),
    Case(
        "a 90% majority label",
        csv(lambda: cancer().pipe(lambda f: f[(f[LABEL] == 1) | (f.index % 9 == 0)])),
        decisions=((LABEL, "positive class"),),
    ),
    # --- broken values ------------------------------------------------------------------------------------------------
    Case(
        "numbers mixed with '?' markers", csv(with_values("mean radius", slice(0, 30), "?")), "ingest", ("mean radius",)
    ),
    Case("values of 1e308", csv(with_values("mean area", slice(0, 5), 1e308)), "ingest", ("mean area",)),
    Case("infinite values", csv(with_values("worst area", slice(0, 5), float("inf"))), "ingest", ("worst area",)),
    Case("a column marked but absent", csv(cancer, ingest__drop_columns=["nope"]), "ingest", ("drop_columns", "nope")),
    # --- columns by role: decisions ---------------------------------------------------------------------------------
    Case("an all-null column", csv(with_column("empty", lambda f: None)), decisions=(("empty", "dropped"),)),
    Case("a constant column", csv(with_column("site", lambda f: "lab-7")), decisions=(("site", "dropped"),)),
    Case(
        "a patient ID",
        csv(with_column("patient_id", lambda f: range(1000, 1000 + len(f)))),
        decisions=(("patient_id", "dropped"),),
    ),
    Case("pandas' index written as a column", csv(cancer, index=True), "ingest", ("empty column name", "index=False")),
    Case("free text that leaks the label", csv(with_column("note", leaking_note)), decisions=(("note", "dropped"),)),
    Case(
        "a timestamp stored as text",
        csv(with_column("visit", lambda f: datetime_column(f).astype(str))),
        decisions=(("visit", "expanded"),),
    ),
    Case(
        "a Parquet datetime column", parquet(with_column("visit", datetime_column)), decisions=(("visit", "expanded"),)
    ),
    Case(
        "a Parquet list column",
        parquet(with_column("readings", lambda f: [[1.0, 2.0]] * len(f))),
        decisions=(("readings", "dropped"),),
    ),
    Case(
        "a high-cardinality category",
        csv(with_column("ward", lambda f: [f"w{i % 300}" for i in range(len(f))])),
        decisions=(("ward", "capped"),),
    ),
    Case(
        "a numeric feature that is the label",
        csv(with_column("leak", lambda f: f[LABEL] * 10.0)),
        decisions=(("leak", "warning"),),
    ),
    Case("regression with a whole-number target", csv(diabetes, label=LABEL), decisions=()),
]


def test_no_broken_input_trains_a_model_silently(tmp_path, single_threaded_openmp, capsys):
    outcomes = []
    for index, case in enumerate(CASES):
        work = tmp_path / f"case{index:02d}"
        work.mkdir()
        data_uri, label, params = case.build(work)
        outcome = run_chain(data_uri, label, work / "out", **params)
        outcome.error = outcome.error.replace(str(work) + "/", "")
        outcomes.append((case, outcome))
    with capsys.disabled():
        print(f"\nbad-input corpus: {len(outcomes)} cases tried")
        for case, outcome in outcomes:
            print(f"  {case.name:<40} {outcome.line()[:200]}")
    problems = []
    for case, outcome in outcomes:
        if case.step:
            if outcome.failed_step != case.step:
                problems.append(f"{case.name}: expected refusal at {case.step}, got: {outcome.line()}")
                continue
            missing = [n for n in case.names if n not in outcome.error]
            if missing:
                problems.append(f"{case.name}: the error does not name {missing}: {outcome.error}")
            later = [p for p in outcome.written if p.split("/")[0] not in _steps_before(case.step)]
            if later:
                problems.append(f"{case.name}: refused at {case.step} but wrote {later}")
            if outcome.trained:
                problems.append(f"{case.name}: refused, yet a model was written")
        else:
            if outcome.failed_step:
                problems.append(f"{case.name}: expected a trained model, got: {outcome.line()}")
                continue
            decided = {(d["subject"], d["action"]) for d in outcome.decisions}
            absent = [d for d in case.decisions if d not in decided]
            if absent:
                problems.append(f"{case.name}: decisions {absent} not recorded (recorded: {sorted(decided)})")
    assert len(CASES) >= 30
    assert not problems, "\n".join(problems)


def _steps_before(step: str) -> tuple[str, ...]:
    order = ("ingest", "validate", "train", "evaluate", "deploy")
    return order[: order.index(step)]
