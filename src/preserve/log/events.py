"""PREMIS-style audit events (as plain JSON-ready dicts) recorded as log leaves.

The field names follow the PREMIS 3 data dictionary's Event entity (``eventIdentifier``,
``eventType``, ``eventDateTime``, ``eventDetailInformation``, ``eventOutcomeInformation``,
``linkingAgentIdentifier``) so the events map onto PREMIS XML one to one. This module builds
the dict only; appending it to the log is :func:`preserve.log.archive_log.record_event`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from .._version import __version__
from .entries import format_time

FIXITY_CHECK = "fixity check"
OUTCOMES = ("pass", "fail")


def fixity_event(
    *,
    outcome: str,
    counts: Mapping[str, int],
    finding_codes: Sequence[str] = (),
    detail: str = "",
    agent_name: str = "preserve",
    agent_version: str = __version__,
    when: datetime | None = None,
    objects: Sequence[str] = (),
) -> dict[str, Any]:
    """A PREMIS-style "fixity check" event.

    ``counts`` e.g. ``{"manifests": 12, "errors": 0, "warnings": 1}``; ``finding_codes`` are the
    distinct codes found (sorted in the event); ``objects`` optional capture ids checked.
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, not {outcome!r}")
    if any(not isinstance(v, int) or isinstance(v, bool) for v in counts.values()):
        raise ValueError("counts must be integers")
    event: dict[str, Any] = {
        "eventIdentifier": {
            "eventIdentifierType": "UUID",
            "eventIdentifierValue": str(uuid.uuid4()),
        },
        "eventType": FIXITY_CHECK,
        "eventDateTime": format_time(when or datetime.now(UTC)),
        "eventDetailInformation": {"eventDetail": detail},
        "eventOutcomeInformation": {
            "eventOutcome": outcome,
            "eventOutcomeDetail": {
                "counts": dict(sorted(counts.items())),
                "findingCodes": sorted(set(finding_codes)),
            },
        },
        "linkingAgentIdentifier": {
            "linkingAgentIdentifierType": "software",
            "linkingAgentIdentifierValue": f"{agent_name} {agent_version}",
            "linkingAgentRole": "executing program",
        },
    }
    if objects:
        event["linkingObjectIdentifier"] = [
            {"linkingObjectIdentifierType": "capture_id", "linkingObjectIdentifierValue": o}
            for o in objects
        ]
    return event
