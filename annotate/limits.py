"""MTurk's and Ground Truth's parameter constraints, checked before the first paid call.

Where botocore's service model states a bound (min, max, pattern, enum, required members), it is
read from the model, so the check moves with it; botocore's own ParamValidator checks types,
required members and minimums, and `problems` adds what that validator leaves to the service
(maximums, patterns, enums). The bounds the model does not carry are MTurk's API reference figures,
kept here beside it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Iterator

# From the MTurk API reference (CreateHITType / CreateHITWithHITType); not in botocore's model.
TITLE_MAX = 128
DESCRIPTION_MAX = 2000
KEYWORDS_MAX = 1000
ANNOTATION_MAX = 255  # RequesterAnnotation
QUESTION_MAX_BYTES = 65_535
QUALIFICATIONS_MAX = 10  # QualificationRequirements: "between zero and ten"
DURATION_RANGES = {
    "assignment_duration": (30, 31_536_000),  # AssignmentDurationInSeconds: 30 s .. 365 days
    "lifetime": (30, 31_536_000),  # LifetimeInSeconds
    "auto_approval_delay": (0, 2_592_000),  # AutoApprovalDelayInSeconds: 0 .. 30 days
    "retry_delay": (0, 31_536_000),  # a qualification test's RetryDelayInSeconds
    "test_duration": (30, 31_536_000),  # TestDurationInSeconds
}
# A HIT created with fewer than 10 assignments can never be extended to 10 or more
# (InvalidMaximumAssignmentsIncrease); 10 or more from the start costs the 40% fee tier.
EXTENSION_CLIFF = 10
MAX_ASSIGNMENTS_MAX = 1_000_000

# XML 1.0's Char production excludes these; MTurk parses every Question as XML, and a HIT whose
# data holds one is refused (after the HITs before it were paid for).
XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@lru_cache(maxsize=None)
def service_model(service: str):
    import botocore.session

    return botocore.session.get_session().get_service_model(service)


def shape(service: str, name: str):
    return service_model(service).shape_for(name)


def input_shape(service: str, operation: str):
    return service_model(service).operation_model(operation).input_shape


def model_pattern(service: str, name: str) -> re.Pattern:
    """A string shape's pattern as a compiled regex matching the whole value."""
    return re.compile(shape(service, name).metadata["pattern"])


def xml_invalid(text: str) -> str | None:
    """The first character XML 1.0 forbids in `text`, described (U+0000), or None."""
    m = XML_INVALID.search(text)
    return None if m is None else f"U+{ord(m.group()):04X}"


def problems(params: dict[str, Any], shape_) -> list[str]:
    """Every way `params` breaks the model's constraints for `shape_`, as 'Member.Path: what' lines."""
    from botocore.validate import ParamValidator

    report = ParamValidator().validate(params, shape_)
    if report.has_errors():
        # botocore's report names the member path, one line per problem.
        return [line.strip() for line in report.generate_report().splitlines() if line.strip()]
    return list(_beyond_botocore(params, shape_, ""))


def _beyond_botocore(value: Any, shape_, path: str) -> Iterator[str]:
    meta = shape_.metadata
    kind = shape_.type_name
    if kind == "structure":
        for name, member in shape_.members.items():
            if isinstance(value, dict) and name in value:
                yield from _beyond_botocore(value[name], member, f"{path}.{name}" if path else name)
    elif kind == "list":
        if "max" in meta and len(value) > meta["max"]:
            yield f"{path}: at most {meta['max']} entries, got {len(value)}"
        for i, entry in enumerate(value):
            yield from _beyond_botocore(entry, shape_.member, f"{path}[{i}]")
    elif kind == "string":
        if "max" in meta and len(value) > meta["max"]:
            yield f"{path}: at most {meta['max']} characters, got {len(value)}"
        if shape_.enum and value not in shape_.enum:
            yield f"{path}: one of {', '.join(shape_.enum)}, got {value!r}"
        if "pattern" in meta and not re.fullmatch(meta["pattern"], value):
            yield f"{path}: must match {meta['pattern']}, got {value!r}"
        if (bad := xml_invalid(value)) is not None:
            yield f"{path}: holds {bad}, a character MTurk cannot take"
    elif kind in ("integer", "long") and "max" in meta and value > meta["max"]:
        yield f"{path}: at most {meta['max']}, got {value}"
