"""The look shared by the worker pages: the page frame with its inline style (no CDN: the
marketplace works offline), the Worker ID input with its format hint, and the favicon."""

from __future__ import annotations

import struct
import zlib
from functools import lru_cache
from html import escape

Response = tuple[int, dict[str, str], bytes]

# The input's pattern is MTurk's WorkerId rule (worker.WORKER_ID); the hint says it in words, so a
# person learns the format before the server has to refuse one.
WORKER_ID_PATTERN = "A[A-Z0-9]{1,63}"
WORKER_ID_EXAMPLE = "A1B2C3D4E5F6G7"
WORKER_ID_HINT = f"A capital A, then capital letters and digits (at most 64 in all), like {WORKER_ID_EXAMPLE}."

STYLE = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:64em;margin:1em auto;"
    "padding:0 1em;color:#222;line-height:1.4}"
    "h1{font-size:1.5em;margin:.4em 0}"
    "a{color:#0a58ca}"
    "table{border-collapse:collapse;width:100%}"
    "th,td{padding:.45em .6em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}"
    "th{background:#f3f5f7;font-weight:600}"
    "td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}"
    ".desc{color:#555;font-size:.9em}"
    ".hint{color:#555;font-size:.85em;display:block;margin-top:.2em}"
    ".error{color:#b00020;font-weight:600}"
    "input[name=workerId]{font-family:monospace;width:16em}"
    "input:invalid:not(:placeholder-shown){border-color:#b00020}"
    "button,.button{background:#0a58ca;color:#fff;border:0;border-radius:4px;padding:.35em .8em;"
    "font:inherit;cursor:pointer;text-decoration:none;display:inline-block}"
    "button.secondary,.button.secondary{background:#e9ecef;color:#222}"
    "form.inline{display:inline;margin:0}"
    ".pages{margin:1em 0}.pages a,.pages span{margin-right:.8em}"
    "iframe{border:1px solid #ccc;width:100%}"
    "fieldset{margin:1em 0}"
)


def page(title: str, body: str, status: int = 200,
         links: tuple[tuple[str, str], ...] = (("/worker/", "All available HITs"),)) -> Response:
    footer = " &middot; ".join(f"<a href=\"{escape(href)}\">{escape(text)}</a>" for href, text in links)
    html = (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{body}"
            f"<p>{footer}</p></body></html>")
    return status, {"Content-Type": "text/html; charset=utf-8"}, html.encode("utf-8")


# Chromium says only "Please match the requested format."; a wrong id is told the format itself.
_SAY_HINT = ("oninvalid=\"this.setCustomValidity(this.validity.patternMismatch ? this.title : '')\" "
             "oninput=\"this.setCustomValidity('')\"")


def worker_id_input(value: str | None = None, required: bool = True) -> str:
    """A labelled Worker ID input: the browser checks the format (the title is its message) and the
    hint beside it says what the format is."""
    return (f"<label>Worker ID <input name=\"workerId\" value=\"{escape(value or '')}\""
            f"{' required' if required else ''} pattern=\"{WORKER_ID_PATTERN}\" maxlength=\"64\" "
            f"placeholder=\"{WORKER_ID_EXAMPLE}\" title=\"{escape(WORKER_ID_HINT)}\" autocapitalize=\"characters\" "
            f"spellcheck=\"false\" autocomplete=\"off\" {_SAY_HINT}>"
            f"<span class=\"hint\">{escape(WORKER_ID_HINT)}</span></label>")


@lru_cache(maxsize=1)
def favicon() -> bytes:
    """A 16x16 icon (a white check on blue) as an ICO holding a PNG, built here so it needs no file."""
    check = {(3, 8), (4, 9), (5, 10), (6, 11), (7, 10), (8, 9), (9, 8), (10, 7), (11, 6), (12, 5)}
    rows = []
    for y in range(16):
        row = bytearray(b"\x00")  # PNG filter: none
        for x in range(16):
            white = any((x, y + d) in check or (x, y - d) in check for d in (0, 1))
            corner = (x in (0, 15)) and (y in (0, 15))
            row += bytes((255, 255, 255, 255)) if white else bytes((10, 88, 202, 0 if corner else 255))
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 6, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))
    # ICONDIR (reserved, type 1 = icon, one image), then its ICONDIRENTRY pointing past both (6 + 16 bytes).
    return struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", 16, 16, 0, 0, 1, 32, len(png), 22) + png


def favicon_response() -> Response:
    return 200, {"Content-Type": "image/x-icon", "Cache-Control": "max-age=86400"}, favicon()
