"""The bench's pure pieces: percentile math, growth check, tables, request templating.

No timing is asserted here; the figures themselves come from ``make bench``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from bench import readme, report
from bench.engine_bench import count_answers, qr_with_answers, synthetic_facts, synthetic_ruleset
from bench.load import Target, wrk_script
from bench.pace import PLACEHOLDER, PaceConfig, Requests
from bench.stats import LatencySummary, grows_linearly, growth_exponents, percentile, ratio
from service.engine import evaluate


def test_percentile_interpolates_like_numpy_linear() -> None:
    values = [15.0, 20.0, 35.0, 40.0, 50.0]
    assert percentile(values, 0) == 15.0
    assert percentile(values, 100) == 50.0
    assert percentile(values, 50) == 35.0
    assert percentile(values, 40) == pytest.approx(29.0)  # numpy.percentile(values, 40)
    assert percentile([7.0], 99) == 7.0


def test_percentile_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match=r"0\.\.100"):
        percentile([1.0], 101)


def test_latency_summary_of_samples() -> None:
    summary = LatencySummary.of([float(ms) for ms in range(1, 101)])
    assert (summary.count, summary.mean, summary.max) == (100, 50.5, 100.0)
    assert summary.p50 == pytest.approx(50.5)
    assert summary.p99 == pytest.approx(99.01)


def test_growth_exponents_tell_linear_from_quadratic() -> None:
    sizes = [10, 100, 1000]
    assert growth_exponents(sizes, [1.0, 10.0, 100.0]) == pytest.approx([1.0, 1.0])
    assert grows_linearly(sizes, [5.0, 12.0, 100.0])  # fixed overhead first, then linear
    assert not grows_linearly(sizes, [1.0, 100.0, 10_000.0])  # quadratic
    with pytest.raises(ValueError, match="growing sizes"):
        growth_exponents([10, 10], [1.0, 2.0])


def test_ratio_without_a_denominator_is_none() -> None:
    assert ratio(1.0, 4.0) == 0.25
    assert ratio(1.0, 0.0) is None


def test_synthetic_rules_fire_one_in_twenty_over_ten_topics() -> None:
    ruleset, facts = synthetic_ruleset(200), synthetic_facts(200)
    evaluation = evaluate(ruleset, facts, hook_instance="00000000-0000-4000-8000-000000000000")
    assert len(evaluation.findings) == 10
    assert len(evaluation.cards) == 10


def test_qr_grows_to_the_asked_number_of_answers() -> None:
    base: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "item": [
            {"linkId": "1", "item": [{"linkId": "1.1", "answer": [{"valueInteger": 3}]}]},
            {"linkId": "2", "answer": [{"valueBoolean": True}]},
        ],
    }
    grown = qr_with_answers(base, 7)
    assert count_answers(grown["item"]) == 7
    assert [item["linkId"] for item in grown["item"]][:3] == ["1.1", "2", "1.1"]
    assert count_answers(base["item"]) == 2  # the base is left alone


def test_every_placeholder_gets_the_same_fresh_id(tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"hookInstance": PLACEHOLDER, "qr": {"id": f"q-{PLACEHOLDER}"}}))
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("t1\nt2\n")
    config = PaceConfig("http://127.0.0.1:1/x", body, tokens, "rate", 1.0, 0.0, rate=1.0)
    requests_ = Requests(config)
    first, headers = requests_.next()
    second, second_headers = requests_.next()
    parsed = json.loads(first)
    assert parsed["qr"]["id"] == f"q-{parsed['hookInstance']}"
    assert json.loads(second)["hookInstance"] != parsed["hookInstance"]
    assert (headers["Authorization"], second_headers["Authorization"]) == ("Bearer t1", "Bearer t2")


def test_wrk_script_names_the_path_and_files(tmp_path: Path) -> None:
    target = Target("hook", "http://127.0.0.1:9/cds-services/x", tmp_path / "b.json", None)
    script = wrk_script(target, threads=2, work_dir=tmp_path).read_text()
    assert 'PATH = "/cds-services/x"' in script
    assert "NTHREADS = 2" in script
    assert 'TOKENS_FILE = ""' in script


def test_report_renders_verdicts_and_growth() -> None:
    results = {
        "throughput": {
            "floor": {"title": "floor", "rps": 800.0, "vs_floor": 1.0, "errors": 0},
            "hook_no_auth": {"title": "no auth", "rps": 320.0, "vs_floor": 0.4, "errors": 0},
            "hook": {"title": "hook", "rps": 200.0, "vs_floor": 0.25, "errors": 0},
        },
        "latency": {"hook": {"latency_ms": {"p99": 18.0}}},
        "engine": {
            "rules": {
                "unit": "rules",
                "points": [{"size": 10, "us": 10.0}, {"size": 100, "us": 100.0}],
                "cost_ratios": [10.0],
                "growth_exponents": [1.0],
                "linear": True,
            }
        },
    }
    text = report.render(results)
    assert (
        "| full hook / floor, req/s (ES384 per call, PostgreSQL audit) | 0.25 | >= 0.25 | met |"
        in text
    )
    assert "| hook with auth off / floor, req/s (audit on) | 0.40 | >= 0.5 | NOT met |" in text
    assert "| full hook p99 at half its max rate | 18.0 ms | <= 25 ms | met |" in text
    assert "screen() per answer (1,000-answer QR, in process) | n/a us | <= 20 us | n/a |" in text
    assert "peer" not in text  # not asked for
    assert "| hook | 200.0 | 0.25 |" in text
    assert "evaluate() vs rule count: linear (or better)" in text
    assert "| 100 | 100.0 | 1.00 | x10.0 | 1.00 |" in text


def test_readme_after_cells_are_filled_from_a_run() -> None:
    text = "a <!-- after:full_ratio -->n/a<!-- /after --> b <!-- after:zz -->x<!-- /after -->"
    filled = readme.fill(text, {"full_ratio": "0.31"})
    assert (
        filled
        == "a <!-- after:full_ratio -->0.31<!-- /after --> b <!-- after:zz -->x<!-- /after -->"
    )
    assert readme.fill(filled, {"full_ratio": "0.40"}).count("0.40") == 1  # refillable


def test_every_after_value_has_a_cell_in_the_readme() -> None:
    results = {
        "throughput": {"floor": {"rps": 1000.0}, "hook": {"rps": 300.0, "vs_floor": 0.3}},
        "costs": {"parse (fast path)": 120.0},
        "finished_at": "2026-12-01T00:00:00+00:00",
    }
    values = readme.after_values(results)
    assert values["full_ratio"] == "0.30" and values["parse_us"] == "120 us"
    text = (Path(__file__).resolve().parents[2] / "bench" / "README.md").read_text()
    cells = set(re.findall(r"<!-- after:([a-z0-9_]+) -->", text))
    assert cells == set(values)


def test_gc_pauses_count_the_collections_of_the_block() -> None:
    import gc

    from bench.gc_pauses import watched

    with watched() as pauses:
        gc.collect()
        gc.collect(0)
    gc.collect()  # after the block: not counted
    summary = pauses.summary(calls=2)
    assert summary["collections"] == [1, 0, 1]
    assert summary["longest_ms"] > 0
    assert summary["ms_per_call"] == pytest.approx(pauses.total_s / 2 * 1000)
