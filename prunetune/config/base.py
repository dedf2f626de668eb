"""What every config section shares: frozen, no unknown keys, no inf/nan; name fields checked
against their registry."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from prunetune.errors import UnknownModelError, UnknownNameError
from prunetune.registry import Registry

Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]
# NumPy's legacy seeding and scikit-learn's random_state take unsigned 32-bit seeds only.
SEED_MAX = 2**32 - 1


def registered(names: Registry) -> Any:
    """A name field checked against ``names`` when validated; the reference lists its entries."""

    def known(name: str) -> str:
        if name not in names:
            raise UnknownNameError(names.kind, name, names.names())
        return name

    return Annotated[str, AfterValidator(known), names]


def known_model(name: str) -> str:
    # Looked up, never built; imported here because the model builders import torch.
    from prunetune.models import resolve

    resolve(name)
    return name


def known_teacher(name: str) -> str:
    try:
        return known_model(name)
    except UnknownModelError as error:
        raise UnknownModelError(str(error).replace("model.name: ", "recovery.teacher.name: ", 1)) from None


class Section(BaseModel):
    # No field can use inf or nan (a learning rate of inf trains to nan, ``1e400`` reads as inf).
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


