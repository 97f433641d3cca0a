"""What a cluster owner sets once (Helm values): images, run defaults, the controller's
restarts and memory.

The chart gives them to the operator as environment variables, and the operator passes
the controller's share on to each controller pod the same way
(:meth:`ClusterSettings.controller_environment`); both read them with
:meth:`ClusterSettings.from_environment`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from paretomerge.k8s.constants import (
    CONTROLLER_MEMORY_ENV,
    CONTROLLER_RESTARTS_ENV,
    EVAL_IMAGE_ENV,
    IMAGE_PULL_POLICY_ENV,
    IMAGE_PULL_SECRETS_ENV,
    RUN_DEFAULTS_ENV,
    RUNTIME_IMAGE_ENV,
)
from paretomerge.spec import ExecutionSpec


@dataclass(frozen=True)
class Images:
    """The two images and how to pull them.

    Attributes:
        runtime: image of the controller, merge and profile containers.
        eval: image of the evaluation containers (vLLM plus this package).
        pull_policy: for both images.
        pull_secrets: names of the Secrets the controller and task pods pull with.
    """

    runtime: str = "ghcr.io/paretomerge/paretomerge:runtime"
    eval: str = "ghcr.io/paretomerge/paretomerge:eval"
    pull_policy: str = "IfNotPresent"
    pull_secrets: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClusterSettings:
    """Attributes:
    images: the images of every pod of a run.
    run_defaults: a partial ``spec.execution`` filling what a run leaves out or empty
        (see :func:`paretomerge.k8s.runs.effective_run`).
    controller_restarts: times a dying controller pod is replaced before the run fails.
    controller_memory: memory of the controller pod.
    """

    images: Images = Images()
    run_defaults: dict[str, Any] = field(default_factory=dict)
    controller_restarts: int = 3
    controller_memory: str = "2Gi"

    @classmethod
    def from_environment(cls) -> ClusterSettings:
        """The settings in this process's environment; what is not set keeps its default.

        Raises:
            pydantic.ValidationError: invalid run defaults (they fail here, at startup,
                not in every run).
        """
        images, defaults = Images(), cls()
        run_defaults = json.loads(os.environ.get(RUN_DEFAULTS_ENV) or "{}")
        ExecutionSpec.model_validate(run_defaults)
        return cls(
            images=Images(
                runtime=os.environ.get(RUNTIME_IMAGE_ENV, images.runtime),
                eval=os.environ.get(EVAL_IMAGE_ENV, images.eval),
                pull_policy=os.environ.get(IMAGE_PULL_POLICY_ENV, images.pull_policy),
                pull_secrets=tuple(
                    filter(None, os.environ.get(IMAGE_PULL_SECRETS_ENV, "").split(","))
                ),
            ),
            run_defaults=run_defaults,
            controller_restarts=int(
                os.environ.get(CONTROLLER_RESTARTS_ENV, defaults.controller_restarts)
            ),
            controller_memory=os.environ.get(CONTROLLER_MEMORY_ENV, defaults.controller_memory),
        )

    def controller_environment(self) -> list[dict[str, str]]:
        """The environment that gives a controller pod the settings it uses: the images
        of its task Jobs and the run defaults."""
        values = {
            RUNTIME_IMAGE_ENV: self.images.runtime,
            EVAL_IMAGE_ENV: self.images.eval,
            IMAGE_PULL_POLICY_ENV: self.images.pull_policy,
            IMAGE_PULL_SECRETS_ENV: ",".join(self.images.pull_secrets),
            RUN_DEFAULTS_ENV: json.dumps(self.run_defaults),
        }
        return [{"name": name, "value": value} for name, value in values.items()]
