"""Which merge variable a tensor belongs to: a transformer layer, the head, or neither.

A decoder checkpoint has ``L`` layers (``num_hidden_layers``) whose tensors carry the
layer index in their name (``model.layers.<N>.mlp.up_proj.weight``), plus the tensors
outside the layer stack that the merge's extra "head" variable covers: the token
embeddings, the final norm and ``lm_head``. Both the layer prefix and the head names
come from mergekit's architecture definition, so the importance profile and the merge
agree on what every variable reaches.

The layer index is read with a pattern anchored at the start of the name and closed by
a dot: ``model.layers.1.`` never captures layers 10-19 (the defect of the reference
code's ``re.search('layers\\.1', name)``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from paretomerge.checkpoint import Checkpoint, CheckpointError

# Any "<something>layers.<N>." occurrence; used once to find the architecture's prefix.
_LAYER_INDEX = re.compile(r"(?:^|\.)layers\.(\d+)\.")

Role = int | Literal["head"] | None


@dataclass(frozen=True)
class TensorLayout:
    """The tensor-name layout of one architecture.

    Attributes:
        num_layers: ``L``; layer indices run ``0..L-1``.
        layer_prefix: the text before the index, e.g. ``"model.layers."``.
        embedding_names: the head tensors before the first layer (token embeddings).
        final_names: the head tensors after the last layer (final norm, ``lm_head``).
        head_names: every name a head tensor may have in a checkpoint: the above plus
            aliases and tied names (a tied ``lm_head`` is stored as the embeddings).
    """

    num_layers: int
    layer_prefix: str
    embedding_names: tuple[str, ...]
    final_names: tuple[str, ...]
    head_names: frozenset[str]

    @property
    def layer_pattern(self) -> re.Pattern[str]:
        """``^<prefix>(\\d+)\\.``: anchored at both ends of the index."""
        return re.compile(rf"^{re.escape(self.layer_prefix)}(\d+)\.")

    def role(self, name: str) -> Role:
        """The layer index of ``name``, ``"head"``, or ``None`` for any other tensor.

        Raises:
            CheckpointError: the name carries a layer index ``>= num_layers``.
        """
        match = self.layer_pattern.match(name)
        if match:
            index = int(match.group(1))
            if index >= self.num_layers:
                raise CheckpointError(
                    f"tensor {name} names layer {index}, but the model has "
                    f"{self.num_layers} layers (num_hidden_layers)"
                )
            return index
        if name in self.head_names:
            return "head"
        return None

    @classmethod
    def of(cls, checkpoint: Checkpoint) -> TensorLayout:
        """The layout of a checkpoint's architecture, as mergekit defines it.

        Raises:
            CheckpointError: mergekit has no definition of the architecture.
        """
        # Imported here: mergekit pulls in transformers, which costs seconds to import.
        from mergekit.architecture import arch_info_for_config
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(str(checkpoint.path))
        arch = arch_info_for_config(config)
        if arch is None or len(arch.modules) != 1:
            raise CheckpointError(
                f"model {checkpoint.path}: architecture {checkpoint.architecture} has no "
                "single-module mergekit definition"
            )
        module_def = next(iter(arch.modules.values()))
        module, prefix = module_def.architecture, module_def.weight_prefix or ""
        pre, post = module.pre_weights(config), module.post_weights(config)
        head_names = frozenset(
            prefix + name
            for weight in (*pre, *post)
            for name in (weight.name, *(weight.aliases or ()), *(weight.tied_names or ()))
        )
        first_layer = prefix + module.layer_weights(index=0, config=config)[0].name
        match = _LAYER_INDEX.search(first_layer)
        if match is None or match.group(1) != "0":
            raise CheckpointError(
                f"model {checkpoint.path}: cannot find the layer index in {first_layer}"
            )
        return cls(
            num_layers=checkpoint.num_layers,
            layer_prefix=first_layer[: match.start(1)],
            embedding_names=tuple(prefix + weight.name for weight in pre),
            final_names=tuple(prefix + weight.name for weight in post),
            head_names=head_names,
        )
