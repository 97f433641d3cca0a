"""The evalscope benchmark behind the user's ``numeric`` jsonl benchmarks.

Importing this module registers ``paretomerge_numeric`` with evalscope. Its data is a
jsonl file of ``{"question": str, "answer": str}`` lines (given as ``dataset_id``); the
prompt is the question text as is, one user message with no added instruction; the
model's answer is :func:`paretomerge.evaluate.scoring.final_number` of its output and is
right when it equals the reference as a number (``acc`` 1.0 or 0.0).
"""

from __future__ import annotations

from typing import Any

from evalscope.api.benchmark import BenchmarkMeta, DefaultDataAdapter
from evalscope.api.dataset import Sample
from evalscope.api.evaluator import TaskState
from evalscope.api.metric import Score
from evalscope.api.registry import register_benchmark

from paretomerge.evaluate.scoring import final_number, numbers_equal

NUMERIC_BENCHMARK = "paretomerge_numeric"


@register_benchmark(
    BenchmarkMeta(
        name=NUMERIC_BENCHMARK,
        pretty_name="ParetoMerge numeric",
        description="A user's questions with numeric answers; the last number answers.",
        dataset_id=NUMERIC_BENCHMARK,
        subset_list=["default"],
        metric_list=["acc"],
        few_shot_num=0,
        eval_split="test",
        prompt_template="{question}",
    )
)
class NumericAdapter(DefaultDataAdapter):
    """Question as prompt, last number (after any think block) as answer."""

    def load_from_disk(self, **kwargs: Any):
        # The data is a local jsonl file: read it directly, never through a hub.
        return super().load_from_disk(use_local_loader=True)

    def record_to_sample(self, record: dict[str, Any]) -> Sample:
        return Sample(input=record["question"], target=str(record["answer"]))

    def extract_answer(self, prediction: str, task_state: TaskState) -> str:
        return final_number(prediction) or ""

    def match_score(
        self,
        original_prediction: str,
        filtered_prediction: str,
        reference: str,
        task_state: TaskState,
    ) -> Score:
        correct = numbers_equal(filtered_prediction or None, reference)
        return Score(
            value={"acc": float(correct)},
            extracted_prediction=filtered_prediction,
            prediction=original_prediction,
            main_score_name="acc",
        )
