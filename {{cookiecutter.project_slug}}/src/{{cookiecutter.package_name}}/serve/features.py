"""The model's input columns, as its MLflow signature names and types them."""

from __future__ import annotations

from dataclasses import dataclass

# MLflow column types and the Python values a JSON request may carry for each.
NUMERIC_TYPES = frozenset({"double", "float", "long", "integer"})
SUPPORTED_TYPES = NUMERIC_TYPES | {"boolean", "string"}
# MLflow's long is 64 bits and its integer 32: a larger whole number is no value of the column.
INTEGER_BOUNDS = {"long": 2**63, "integer": 2**31}


@dataclass(frozen=True, slots=True)
class Feature:
    """One input column of the model signature."""

    name: str
    type: str
    required: bool = True  # present in every row (MLflow's meaning: else it may be left out)
    nullable: bool = False  # may be null; always so when not required

    def __post_init__(self) -> None:
        if not self.required:  # a column that may be left out is null when it is
            object.__setattr__(self, "nullable", True)
