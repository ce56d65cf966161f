"""jaxtyping aliases used across odeinfer."""

from collections.abc import Callable
from typing import Any, TypeAlias

from jaxtyping import Array, ArrayLike, Bool, Float, Int, PyTree

Scalar: TypeAlias = Float[Array, ""]
ScalarLike: TypeAlias = float | int | Float[ArrayLike, ""]
BoolScalar: TypeAlias = Bool[Array, ""]
IntScalar: TypeAlias = Int[Array, ""]
State: TypeAlias = PyTree[Float[ArrayLike, "..."]]
Params: TypeAlias = PyTree[Any]
VectorField: TypeAlias = Callable[[Scalar, State, Params], State]
EventFunction: TypeAlias = Callable[[Scalar, State, Params], Scalar]
ResetFunction: TypeAlias = Callable[[Scalar, State, Params], State]
