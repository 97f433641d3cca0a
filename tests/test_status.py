"""The run's status stays compact: budgets of hundreds or thousands of evaluations fit the
API server's object size limit, and what does not fit is named by the file that has it."""

from __future__ import annotations

import copy
import json

import numpy as np
from builders import benchmark_score

from paretomerge.controller.state import AnchorRecord, CandidateRecord, RunState
from paretomerge.k8s.status import (
    EVALUATION_COLUMNS,
    MAX_STATUS_EVALUATIONS,
    MAX_STATUS_PARETO,
    NO_VALUE,
    EvaluationRow,
    run_status,
)
from paretomerge.results import EvaluationCost

API_OBJECT_LIMIT = 1_572_864  # 1.5 MiB: etcd's request limit, what the API server stores
DIM = 37  # Qwen3-4B: 36 layers and the head
SCORES = {
    "gpqa_diamond": benchmark_score("gpqa_diamond", 0.512345678, 12345.678, n=198),
    "aime25": benchmark_score("aime25", 0.366666667, 23456.789),
}
# The paper's setting on one GPU: 198 + 30 answers, about 3 M tokens.
COST = EvaluationCost(
    answers=228,
    output_tokens=3_148_128,
    merge_seconds=81.234567,
    serve_seconds=41.23456,
    generate_seconds=1790.12345,
    gpus=1,
)


def finished_state(evaluations: int, objectives_std=(0.05, 0.04)) -> RunState:
    """A run whose evaluations all lie on the Pareto front (the most status they can
    need; with ``objectives_std`` well below their spacing, ``1 / (evaluations + 1)``,
    all are listed apart), each with a 37-dimensional weight vector, raw scores and step
    times."""
    rng = np.random.default_rng(0)
    candidates = []
    for i in range(evaluations):
        x = rng.random(DIM).tolist()
        f1 = (i + 1) / (evaluations + 1)  # strictly between the anchors (0, 1) and (1, 0)
        candidates.append(
            CandidateRecord(
                id=f"c{i + 1:04d}",
                x=x,
                variables=x,
                status="succeeded",
                objectives=[f1, 1.0 - f1],
                objectives_std=list(objectives_std),
                scores=SCORES,
                seconds={"merge": 81.234567, "evaluate": 1834.56789, "proposal": 3.21234},
                attempts=2,
                cost=COST,
            )
        )
    anchors = {
        role: AnchorRecord(model=f"models/{role}", scores=SCORES, cache_key="0" * 64)
        for role in ("base", "expert")
    }
    return RunState(
        run="qwen3-4b",
        phase="Succeeded",
        candidates=candidates,
        hypervolume=rng.random(evaluations).tolist(),
        anchors=anchors,
    )


def serialized_size(status: dict) -> int:
    return len(json.dumps({"status": status}).encode())


def test_six_hundred_evaluations_are_all_in_the_status_well_under_the_limit() -> None:
    status = run_status(finished_state(600, (0.0005, 0.0004)), "runs/qwen3-4b", 3)
    assert len(status["evaluations"]) == status["finished"] == 600
    assert status["paretoSize"] == 600 and len(status["pareto"]) == MAX_STATUS_PARETO
    assert status["paretoIn"] == "runs/qwen3-4b/pareto.csv"
    assert "evaluationsIn" not in status
    assert serialized_size(status) < API_OBJECT_LIMIT / 4


def test_beyond_the_row_limit_the_status_names_where_the_rest_is() -> None:
    evaluations = MAX_STATUS_EVALUATIONS + 1
    status = run_status(finished_state(evaluations), "runs/qwen3-4b", 3)
    assert status["evaluations"] is None
    assert status["evaluationsIn"] == "runs/qwen3-4b/results.json"
    assert status["finished"] == evaluations and len(status["hypervolumeHistory"]) == evaluations
    assert serialized_size(status) < API_OBJECT_LIMIT / 4


def test_a_small_front_is_whole_in_the_status_and_clears_the_pointer() -> None:
    status = run_status(finished_state(2), "runs/qwen3-4b", 3)
    assert len(status["pareto"]) == 2 and status["paretoIn"] is None


def test_a_failed_candidate_row_has_no_nulls_the_api_server_would_drop() -> None:
    state = finished_state(3)
    state.candidates[1] = CandidateRecord(
        id="c0002", x=[0.5] * DIM, variables=[0.5] * DIM, status="failed", reasons=["crash"]
    )
    rows = run_status(state, "runs/qwen3-4b", 3)["evaluations"]
    assert all(len(row) == len(EVALUATION_COLUMNS) and None not in row for row in rows)
    assert rows[1][:4] == ["c0002", "failed", NO_VALUE, NO_VALUE]


def test_the_status_keeps_every_evaluation_compact_and_the_front_in_full() -> None:
    state = RunState(run="r", phase="Searching")
    for i in range(300):
        f1 = (i + 1) / 301  # strictly between the anchors (0, 1) and (1, 0)
        state.candidates.append(
            CandidateRecord(
                id=f"c{i + 1:04d}",
                x=[f1] * 37,
                variables=[f1] * 37,
                status="succeeded",
                objectives=[f1, 1 - f1],
                scores={"aime25": benchmark_score("aime25", f1, 1000.0)},
            )
        )
    state.hypervolume = [0.5] * 300
    status = run_status(state, "runs/r", 3)
    assert status["finished"] == 300 and len(status["evaluations"]) == 300
    assert status["paretoSize"] == 300 and status["observedGeneration"] == 3
    assert len(str(status)) < 1_000_000
    later = run_status(copy.deepcopy(state), "runs/r", 4, status["conditions"])
    running = next(c for c in later["conditions"] if c["type"] == "Running")
    assert running["status"] == "True"
    assert running["lastTransitionTime"] == status["conditions"][0]["lastTransitionTime"]


def test_the_front_in_the_status_is_botorchs_front() -> None:
    """The status' front (numpy, so the operator loads no torch) keeps the candidates
    BoTorch's Pareto mask keeps, less those the anchors (0, 1) and (1, 0) match or beat,
    with one candidate (the first) per distinct objective vector."""
    import torch
    from botorch.utils.multi_objective.pareto import is_non_dominated

    rng = np.random.default_rng(1)
    for _ in range(50):
        objectives = rng.integers(0, 6, size=(int(rng.integers(1, 40)), 2)) / 5
        state = RunState(run="r", phase="Searching")
        for i, (f1, f2) in enumerate(objectives.tolist()):
            state.candidates.append(
                CandidateRecord(
                    id=f"c{i + 1:04d}",
                    x=[0.5],
                    variables=[0.5],
                    status="succeeded",
                    objectives=[f1, f2],
                    scores={},
                )
            )
        mask = is_non_dominated(torch.as_tensor(objectives), deduplicate=False).numpy()
        first_with: dict[tuple[float, ...], str] = {}
        for c, keep in zip(state.candidates, mask, strict=True):
            f1, f2 = c.objectives
            matched_by_anchor = (f1 <= 0.0 and f2 <= 1.0) or (f1 <= 1.0 and f2 <= 0.0)
            if keep and not matched_by_anchor:
                first_with.setdefault((f1, f2), c.id)
        expected = set(first_with.values())
        pareto = run_status(state, "runs/r", 1)["pareto"]
        assert {point["id"] for point in pareto} == expected
        assert [p["f1"] for p in pareto] == sorted((p["f1"] for p in pareto), reverse=True)


def test_a_row_is_written_as_the_api_server_keeps_it_and_read_back() -> None:
    state = finished_state(3)
    state.candidates[1] = CandidateRecord(
        id="c0002",
        x=[0.5] * DIM,
        variables=[0.5] * DIM,
        status="failed",
        attempts=3,
        seconds={"merge": 12.34567},
    )
    rows = run_status(state, "runs/qwen3-4b", 3)["evaluations"]
    assert EVALUATION_COLUMNS == (
        "id",
        "status",
        "f1",
        "f2",
        "mergeSeconds",
        "evaluateSeconds",
        "proposalSeconds",
        "attempts",
        "f1Std",
        "f2Std",
        "answers",
        "outputTokens",
        "serveSeconds",
        "generateSeconds",
        "gpuSeconds",
    )
    assert rows[0] == [
        *("c0001", "succeeded", 0.25, 0.75, 81.235, 1834.568, 3.212, 2, 0.05, 0.04),
        *(228, 3_148_128, 41.235, 1790.123, 1831.358),
    ]
    assert rows[1] == [
        "c0002",
        "failed",
        NO_VALUE,
        NO_VALUE,
        12.346,
        NO_VALUE,
        NO_VALUE,
        3,
        *[NO_VALUE] * 7,  # no deviations and no cost: the failed attempt's is not known
    ]
    for row, candidate in zip(rows, state.candidates, strict=True):
        assert EvaluationRow.from_status(row) == EvaluationRow.of(candidate)
    failed = EvaluationRow.from_status(rows[1])
    assert (failed.f1, failed.merge_seconds, failed.evaluate_seconds) == (None, 12.346, None)
    # A status written before the deviations were added names its own, fewer columns.
    old_columns = EVALUATION_COLUMNS[:8]
    old_row = EvaluationRow.from_status(rows[0][:8], old_columns)
    assert (old_row.f1, old_row.merge_seconds, old_row.f1_std) == (0.25, 81.235, None)


def test_the_run_cost_is_the_sum_of_the_rows_and_the_anchors_are_apart() -> None:
    state = finished_state(3)
    state.candidates[1] = state.candidates[1].model_copy(
        update={"status": "failed", "cost": None, "objectives": None}
    )
    anchor_cost = COST.model_copy(update={"merge_seconds": 0.0, "gpus": 2})
    state.anchors["base"] = state.anchors["base"].model_copy(update={"cost": anchor_cost})
    status = run_status(state, "runs/qwen3-4b", 3)
    rows = [EvaluationRow.from_status(row) for row in status["evaluations"]]
    assert status["cost"]["evaluations"] == 2
    assert (
        status["cost"]["outputTokens"] == sum(r.output_tokens or 0 for r in rows) == 2 * 3_148_128
    )
    assert status["cost"]["answers"] == sum(r.answers or 0 for r in rows) == 456
    assert status["cost"]["gpuSeconds"] == sum(r.gpu_seconds or 0.0 for r in rows)
    assert status["cost"]["mergeSeconds"] == round(2 * 81.234567, 3)
    # The anchors' cost is told apart: 2 GPUs held for their server start and generation.
    assert status["anchorCost"]["evaluations"] == 1
    assert status["anchorCost"]["gpuSeconds"] == round(2 * (41.23456 + 1790.12345), 3)
