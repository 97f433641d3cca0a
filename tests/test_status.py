"""The run's status stays compact: budgets of hundreds or thousands of evaluations fit the
API server's object size limit, and what does not fit is named by the file that has it."""

from __future__ import annotations

import json

import numpy as np

from paretomerge.controller.state import AnchorRecord, CandidateRecord, RunState
from paretomerge.status import (
    EVALUATION_COLUMNS,
    MAX_STATUS_EVALUATIONS,
    MAX_STATUS_PARETO,
    NO_VALUE,
    run_status,
)

API_OBJECT_LIMIT = 1_572_864  # 1.5 MiB: etcd's request limit, what the API server stores
DIM = 37  # Qwen3-4B: 36 layers and the head
SCORES = {
    "gpqa_diamond": {"accuracy": 0.512345678, "mean_output_tokens": 12345.678},
    "aime25": {"accuracy": 0.366666667, "mean_output_tokens": 23456.789},
}


def finished_state(evaluations: int) -> RunState:
    """A run whose evaluations all lie on the Pareto front (the most status they can
    need), each with a 37-dimensional weight vector, raw scores and stage times."""
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
                scores=SCORES,
                seconds={"merge": 81.234567, "evaluate": 1834.56789, "proposal": 3.21234},
                attempts=2,
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
    status = run_status(finished_state(600), "runs/qwen3-4b", 3)
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
