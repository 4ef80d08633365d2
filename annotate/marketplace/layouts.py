"""HIT layouts: CreateHIT / CreateHITWithHITType with HITLayoutId and HITLayoutParameters.

On MTurk a HIT layout is a project template made on the requester website; its `${name}`
placeholders are filled from HITLayoutParameters and the result becomes an HTMLQuestion. Here
layouts are registered locally (`annotate marketplace serve --layout ID=FILE`, or
`MarketplaceServer.register_layout`) and kept in the marketplace's database, so every process
sharing the database sees them. A layout file holds the HTML (or a whole HTMLQuestion document).

Substitution is textual, as on MTurk (the API reference warns that values with reserved characters
may make an invalid document): values are not escaped. Every placeholder needs a parameter, and
every parameter must be used by the layout.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

from annotate.marketplace.models import HTML_QUESTION_NS, RequestError

LAYOUT_ID = re.compile(r"^[A-Z0-9]{1,64}$")  # botocore's EntityId pattern and length
PLACEHOLDER = re.compile(r"\$\{([^}\s]+)\}")
DEFAULT_FRAME_HEIGHT = 0  # MTurk: 0 lets the frame fill the worker's window

SCHEMA = ("CREATE TABLE IF NOT EXISTS hit_layouts (layout_id TEXT PRIMARY KEY, content TEXT NOT NULL, "
          "registered REAL)")


def create_schema(conn: sqlite3.Connection) -> None:
    conn.execute(SCHEMA)
    # HITs remember their layout (GetHIT reports HITLayoutId); older databases gain the column.
    if "hit_layout_id" not in {r[1] for r in conn.execute("PRAGMA table_info(hits)")}:
        conn.execute("ALTER TABLE hits ADD COLUMN hit_layout_id TEXT")


def check_layout(layout_id: str, content: str) -> None:
    """Raise ValueError when a layout cannot be registered."""
    if not LAYOUT_ID.match(layout_id):
        raise ValueError(f"layout id {layout_id!r} must be 1 to 64 uppercase letters and digits "
                         f"(MTurk's HITLayoutId pattern)")
    if not content.strip():
        raise ValueError(f"layout {layout_id} is empty")


def register(conn: sqlite3.Connection, layout_id: str, content: str, now: float) -> None:
    check_layout(layout_id, content)
    conn.execute("INSERT INTO hit_layouts (layout_id, content, registered) VALUES (?, ?, ?) "
                 "ON CONFLICT (layout_id) DO UPDATE SET content = excluded.content, registered = excluded.registered",
                 (layout_id, content, now))


def parse_spec(spec: str) -> tuple[str, Path]:
    """`ID=FILE` (the serve flag) as (id, path); ValueError when malformed."""
    layout_id, sep, file = spec.partition("=")
    if not sep or not layout_id or not file:
        raise ValueError(f"--layout takes ID=FILE, not {spec!r}")
    return layout_id, Path(file)


def _html_question(html: str) -> str:
    # CDATA cannot hold "]]>": split it across two sections.
    body = html.replace("]]>", "]]]]><![CDATA[>")
    return (f'<HTMLQuestion xmlns="{HTML_QUESTION_NS}"><HTMLContent><![CDATA[{body}]]></HTMLContent>'
            f"<FrameHeight>{DEFAULT_FRAME_HEIGHT}</FrameHeight></HTMLQuestion>")


def question_of(conn: sqlite3.Connection, p: dict[str, Any]) -> str:
    """The Question document of a CreateHIT call: its Question, or its layout filled in."""
    layout_id, question = p.get("HITLayoutId"), p.get("Question")
    if (layout_id is None) == (question is None):
        raise RequestError("Either a Question parameter or a HITLayoutId parameter must be provided, not both.",
                           "AWS.MechanicalTurk.InvalidParameterValue")
    if question is not None:
        if p.get("HITLayoutParameters"):
            raise RequestError("HITLayoutParameters can only be given with a HITLayoutId.",
                               "AWS.MechanicalTurk.InvalidParameterValue")
        return question
    row = conn.execute("SELECT content FROM hit_layouts WHERE layout_id = ?", (layout_id,)).fetchone()
    if row is None:
        raise RequestError(f"HITLayout {layout_id} does not exist.", "AWS.MechanicalTurk.HITLayoutDoesNotExist")
    values: dict[str, str] = {}
    for parameter in p.get("HITLayoutParameters") or []:
        if parameter["Name"] in values:
            raise RequestError(f"HITLayoutParameter {parameter['Name']!r} is given more than once.",
                               "AWS.MechanicalTurk.InvalidParameterValue")
        values[parameter["Name"]] = parameter["Value"]
    content = row["content"]
    wanted = list(dict.fromkeys(PLACEHOLDER.findall(content)))
    missing = [name for name in wanted if name not in values]
    if missing:
        raise RequestError(f"HITLayout {layout_id} needs a value for the placeholder(s) "
                           f"{', '.join(missing)}; give them in HITLayoutParameters.",
                           "AWS.MechanicalTurk.InvalidParameterValue")
    unused = [name for name in values if name not in wanted]
    if unused:
        raise RequestError(f"HITLayoutParameter(s) {', '.join(unused)} are not used in HITLayout {layout_id}.",
                           "AWS.MechanicalTurk.InvalidParameterValue")
    filled = PLACEHOLDER.sub(lambda match: values[match.group(1)], content)
    if filled.lstrip().startswith(("<HTMLQuestion", "<?xml")):
        return filled
    return _html_question(filled)
