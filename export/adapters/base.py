"""The contract every adapter returns: a StepModel, a model that takes its state.

`forward(ids, *states) -> (logits, *new_states)` is one step of a library model, the
convention `rnnedge.export` already exports (the example is `(ids, *states)`, and the i-th
state input pairs with the i-th state output). On top of it a StepModel says what its states
are: `state_names` (meaningful, e.g. "layers.0.att_num"), `initial_states(batch)` (the
library's own initial values) and `example()` (token ids of shape (batch, 1) and the initial
states), so `rnnedge.export(step, step.example(), out)` needs nothing else.

The captured graph names each state input after its state name, dots as underscores
("layers_0_att_num"): torch.export names a graph input after the forward parameter, and a
StepModel's forward is given a signature with one parameter per state (_name_parameters).
"""

from __future__ import annotations

import inspect

import torch

from rnnedge.errors import ExportError


class StepModel(torch.nn.Module):
    """One step of a library model with its state explicit (see the module docstring).
    Subclasses set `state_names` in __init__, then call `self.name_parameters()`, and
    implement `step` and `initial_states`."""

    state_names: tuple[str, ...] = ()

    def forward(self, ids: torch.Tensor, *states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if len(states) != len(self.state_names):
            raise ExportError(
                f"{type(self).__name__} takes {len(self.state_names)} states "
                f"({', '.join(self.state_names[:5])}, ...), got {len(states)}"
            )
        return self.step(ids, states)

    def step(self, ids: torch.Tensor, states: tuple[torch.Tensor, ...]) -> tuple:
        raise NotImplementedError

    def initial_states(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def example(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        """One step of input: token ids (batch, 1) int64, then the initial states."""
        return (torch.zeros(batch, 1, dtype=torch.int64), *self.initial_states(batch))

    def name_parameters(self) -> None:
        """Gives this instance a forward whose parameters are `ids` and one per state name,
        so the exported graph's state inputs carry those names (torch.export reads them with
        inspect.signature). The class is swapped for a one-off subclass: the signature
        depends on the instance's layer count."""
        base = type(self)

        def forward(self, ids, *states):  # the same code; only the signature differs
            return base.forward(self, ids, *states)

        param = inspect.Parameter
        names = ["self", "ids", *(graph_name(n) for n in self.state_names)]
        kind = param.POSITIONAL_OR_KEYWORD
        forward.__signature__ = inspect.Signature([param(n, kind) for n in names])
        self.__class__ = type(base.__name__, (base,), {"forward": forward})


def graph_name(state_name: str) -> str:
    """The graph's name of a state: "layers.0.att_num" -> "layers_0_att_num"."""
    return state_name.replace(".", "_")
