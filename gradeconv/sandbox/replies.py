"""The schema every reply from a worker must fit before the parent looks at it.

The worker runs inside the student's process and may have been rewritten by
the student, so a reply is a claim, not a fact. Anything outside this schema
(an unknown status, a wrong type, an array index out of range, an array nobody
refers to) makes the reply malformed, and a malformed reply fails the call.
"""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from gradeconv.sandbox.wire import DOTTED, IDENTIFIER, LOCATION

MAX_ITEMS = 64


class MalformedReply(Exception):
    """A reply that does not fit the schema of its request."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class NoneValue(_Strict):
    none: Literal[True]


class ArrayValue(_Strict):
    array: Annotated[StrictInt, Field(ge=0)]


class OtherValue(_Strict):
    other: Annotated[str, Field(max_length=300)]


class MissingValue(_Strict):
    """A parameter entry the function should have stored and did not."""

    missing: Literal[True]


Item = Union[NoneValue, ArrayValue, OtherValue]
Entries = Annotated[dict[Annotated[str, Field(pattern=IDENTIFIER)], Union[Item, MissingValue]],
                    Field(max_length=MAX_ITEMS)]


class MappingValue(_Strict):
    """A dict the function returned (a model's grads, an update rule's config): names to plain items."""

    mapping: Annotated[dict[Annotated[str, Field(pattern=IDENTIFIER)], Item], Field(max_length=MAX_ITEMS)]


class SequenceValue(_Strict):
    sequence: Literal["tuple", "list"]
    items: Annotated[list[Union[NoneValue, ArrayValue, OtherValue, MappingValue]], Field(max_length=MAX_ITEMS)]


Value = Union[NoneValue, ArrayValue, OtherValue, MappingValue, SequenceValue]
Blobs = Annotated[list[Annotated[StrictInt, Field(ge=0)]], Field(max_length=MAX_ITEMS)]
Indices = Annotated[list[Annotated[StrictInt, Field(ge=0, lt=MAX_ITEMS)]], Field(max_length=MAX_ITEMS)]


class Returned(_Strict):
    status: Literal["ok"]
    value: Value
    arguments: Annotated[list[Entries], Field(max_length=MAX_ITEMS)] = []
    blobs: Blobs


class Raised(_Strict):
    status: Literal["raised"]
    type: Annotated[str, Field(pattern=IDENTIFIER)]
    message: Annotated[str, Field(max_length=2000)]
    where: Annotated[str, Field(pattern=LOCATION)] | None = None
    module: Annotated[str, Field(pattern=DOTTED)] | None = None
    mutated: Indices = []
    blobs: Blobs


class OutOfMemory(_Strict):
    status: Literal["memory"]
    message: Annotated[str, Field(max_length=2000)] = ""
    blobs: Blobs


class Loaded(_Strict):
    status: Literal["ok"]
    functions: Annotated[dict[Annotated[str, Field(pattern=DOTTED)],
                              Literal["ok", "missing", "not callable"]], Field(max_length=MAX_ITEMS)]
    blobs: Blobs


class Refused(_Strict):
    """The worker could not understand the request (a fault on our side or a rewritten worker)."""

    status: Literal["protocol"]
    message: Annotated[str, Field(max_length=2000)] = ""
    blobs: Blobs


class Ready(_Strict):
    """A started worker, before any student code: the sandbox is up."""

    status: Literal["ready"]
    blobs: Blobs


class Done(_Strict):
    status: Literal["ok"]
    blobs: Blobs


_FAILED = {"raised": Raised, "memory": OutOfMemory, "protocol": Refused}
SCHEMAS = {
    "start": {"ready": Ready},
    "load": {"ok": Loaded, **_FAILED},
    "call": {"ok": Returned, **_FAILED},
    "set": {"ok": Done, **_FAILED},
    "drop": {"ok": Done, "protocol": Refused},
}


def validate(op: str, header: dict, array_count: int) -> dict:
    """The header if it is a well-formed reply to `op` with `array_count` arrays; else MalformedReply."""
    status = header.get("status")
    schema = SCHEMAS[op].get(status) if isinstance(status, str) else None
    if schema is None:
        raise MalformedReply(f"unknown reply status {status!r}")
    try:
        reply = schema.model_validate(header)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise MalformedReply(f"reply field {where or '(top)'}: {first['msg']}") from None
    referenced = _array_indices(getattr(reply, "value", None))
    for entries in getattr(reply, "arguments", []):
        referenced += [index for item in entries.values() for index in _array_indices(item)]
    if sorted(referenced) != list(range(array_count)):
        raise MalformedReply(f"the reply refers to arrays {sorted(referenced)} but carries {array_count}")
    return header


def _array_indices(value) -> list[int]:
    if isinstance(value, ArrayValue):
        return [value.array]
    if isinstance(value, SequenceValue):
        return [index for item in value.items for index in _array_indices(item)]
    if isinstance(value, MappingValue):
        return [index for item in value.mapping.values() for index in _array_indices(item)]
    return []

