"""JSON Schema errors as the lab reports them: one function, `input_error()`, turns what
jsonschema finds into an InputError at the bad value's key path.

Two wordings, for the two kinds of input the lab checks against schemas:
  DOCUMENT  files a user edits (topologies, scenarios): the message names where the value
            is (`nodes.gw.role: ...`), and an unknown key is pointed at, with the closest
            known one suggested;
  OBJECT    objects of an API or a section its owner checks (the gateway's services and
            settings, results documents): the path travels separately (a file position, or
            the `field` of an HTTP error), so the message is only what is wrong.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable
from typing import Literal

import jsonschema

from lab.errors import InputError, KeyPath, describe

Wording = Literal["document", "object"]
DOCUMENT: Wording = "document"
OBJECT: Wording = "object"


def validator(schema: dict, **kwargs) -> jsonschema.Validator:
    """A JSON Schema 2020-12 validator for SCHEMA whose `pattern` means what JSON Schema
    says (ECMA 262): `$` ends the string. Python's re lets `$` match before a final newline,
    so "^[a-z]+$" would take "x\\n" and a name with a newline would reach the kernel and the
    filesystem."""
    return _Validator(schema, **kwargs)


@functools.cache
def _ecma(pattern: str) -> re.Pattern:
    """PATTERN with each `$` outside a character class and not escaped as `\\Z`."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if c == "[" and not in_class:
            in_class = True
        elif c == "]" and in_class:
            in_class = False
        elif c == "$" and not in_class:
            c = r"\Z"
        out.append(c)
        i += 1
    return re.compile("".join(out))


def _pattern(validator, pattern, instance, schema):
    if validator.is_type(instance, "string") and not _ecma(pattern).search(instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


_Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator,
                                          {"pattern": _pattern})


def nesting(data: object) -> int:
    """How deep lists and objects nest in DATA parsed from JSON (a scalar: 0), found without
    recursion: a document nested deeper than any of ours is refused before schema checks
    recurse into it."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, level = stack.pop()
        children = (value.values() if isinstance(value, dict) else
                    value if isinstance(value, list) else None)
        if children is None:
            continue
        deepest = max(deepest, level)
        stack.extend((c, level + 1) for c in children)
    return deepest


def input_error(errors: Iterable[jsonschema.ValidationError], at: KeyPath = (),
                wording: Wording = DOCUMENT) -> InputError | None:
    """The most specific of ERRORS as an InputError (None if there are none); AT is the key
    path of the checked value inside the whole input."""
    errors = list(errors)
    if not errors:
        return None
    err = jsonschema.exceptions.best_match(errors)
    # best_match prefers the most specific error; an anyOf whose branches only failed their
    # formats (an address: ipv4 or ipv6) is more telling as a whole.
    while err.context and not all(e.validator == "format" for e in err.context):
        err = jsonschema.exceptions.best_match(err.context)
    path = tuple(at) + tuple(err.absolute_path)
    if wording == DOCUMENT:
        return _document(err, path)
    return InputError(_object_message(err), path=path)


def _document(err: jsonschema.ValidationError, path: KeyPath) -> InputError:
    where = describe(path) or "the top level"
    v, value = err.validator, err.instance
    if v == "additionalProperties" and isinstance(value, dict):
        allowed = sorted(err.schema.get("properties", {}))
        extra = [k for k in value if k not in allowed]
        if extra:
            key = extra[0]
            hint = difflib.get_close_matches(key, allowed, n=1)
            msg = f"unknown key '{key}' in {where}"
            if hint:
                msg += f" (did you mean '{hint[0]}'?)"
            elif allowed:
                msg += f" (allowed: {', '.join(allowed)})"
            return InputError(msg, path=path + (key,), at_key=True)
    if v == "enum":
        message = f"{value!r} is not one of: {', '.join(str(c) for c in err.validator_value)}"
    elif v == "pattern":
        message = f"{value!r} is not a valid name here"
    elif v == "propertyNames":
        message = f"invalid name: {err.message}"
    elif v == "type":
        message = f"expected {err.validator_value}, got {value!r}"
    else:
        message = err.message
    return InputError(f"{where}: {message}", path=path)


def _object_message(err: jsonschema.ValidationError) -> str:
    v, value = err.validator, err.instance
    if v == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(value) - set(allowed)) if isinstance(value, dict) else []
        return (f"unknown field '{extra[0]}' (known: {', '.join(allowed)})" if extra
                else err.message)
    if v == "required":
        return err.message.replace("is a required property", "is required")
    if v == "type":
        want = err.validator_value
        want = " or ".join(want) if isinstance(want, list) else want
        return f"expected {'an' if want[0] in 'aeiou' else 'a'} {want}, got {value!r}"
    if v in ("minimum", "maximum"):
        lo, hi = err.schema.get("minimum"), err.schema.get("maximum")
        return f"{value!r} is out of range ({lo}..{hi})"
    if v == "enum":
        return f"{value!r} is not one of: {', '.join(map(str, err.validator_value))}"
    if v == "anyOf" and isinstance(value, str):      # Address: ipv4 or ipv6
        return f"'{value}' is not an IPv4 or IPv6 address"
    if v == "format" and err.validator_value in ("ipv4", "ipv6"):
        return f"'{value}' is not an IPv{err.validator_value[-1]} address"
    if v == "minProperties":
        return "give at least one field to change"
    if v == "maxItems":
        return f"at most {err.validator_value} items"
    return err.message
