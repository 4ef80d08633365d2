"""Files workers upload to a QuestionForm's FileUploadAnswer, and GetFileUploadURL.

The file is kept in the marketplace's SQLite under an UploadedFileKey (the key the answer XML
names). GetFileUploadURL hands out a URL that serves it for 60 seconds, as MTurk's presigned
URL does; after that the URL answers 403.
"""

from __future__ import annotations

import secrets
import sqlite3
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from annotate.marketplace.models import RequestError
from annotate.marketplace.question_form import ANSWERS_NS, Upload

if TYPE_CHECKING:
    from annotate.marketplace.models import Marketplace

URL_TTL = 60  # seconds, as the API reference says of GetFileUploadURL
SCHEMA = """
CREATE TABLE IF NOT EXISTS uploaded_files (
    file_key TEXT PRIMARY KEY, assignment_id TEXT NOT NULL, question_identifier TEXT NOT NULL, filename TEXT,
    size INTEGER NOT NULL, content BLOB NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS file_upload_urls (
    token TEXT PRIMARY KEY, file_key TEXT NOT NULL, expires REAL NOT NULL);
"""
PATH = "/worker/uploads/"


class FileUploads:
    def __init__(self, backend: "Marketplace"):
        self.backend = backend
        backend.create_tables(SCHEMA)

    @staticmethod
    def store(conn: sqlite3.Connection, assignment_id: str, question_id: str, upload: Upload, now: float) -> str:
        """Keep an upload (inside the submitting transaction); returns its UploadedFileKey."""
        key = secrets.token_hex(16)
        conn.execute("INSERT INTO uploaded_files (file_key, assignment_id, question_identifier, filename, size, "
                     "content, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (key, assignment_id, question_id, upload.filename, len(upload.content), upload.content, now))
        return key

    def get_file_upload_url(self, assignment_id: str, question_id: str) -> dict[str, Any]:
        with self.backend.operation("GetFileUploadURL") as (conn, now):
            row = self.backend._assignment_row(conn, assignment_id)
            key = _answer_file_key(row["answer"] or "", question_id)
            if key is None:
                raise RequestError(f"Assignment {assignment_id} has no uploaded file for question {question_id}.",
                                   "AWS.MechanicalTurk.FileUploadDoesNotExist")
            token = secrets.token_urlsafe(24)
            conn.execute("DELETE FROM file_upload_urls WHERE expires < ?", (now,))
            conn.execute("INSERT INTO file_upload_urls (token, file_key, expires) VALUES (?, ?, ?)",
                         (token, key, now + URL_TTL))
            base = getattr(self.backend, "base_url", None) or "http://127.0.0.1"
            return {"FileUploadURL": f"{base}{PATH}{quote(token)}"}

    def serve(self, token: str) -> tuple[int, dict[str, str], bytes]:
        with self.backend.operation() as (conn, now):
            row = conn.execute("SELECT f.*, u.expires FROM file_upload_urls u JOIN uploaded_files f USING (file_key) "
                               "WHERE u.token = ?", (token,)).fetchone()
        if row is None or row["expires"] < now:
            return 403, {"Content-Type": "text/plain"}, b"Request has expired or the URL is not valid."
        name = (row["filename"] or "upload").replace('"', "")
        return 200, {"Content-Type": "application/octet-stream",
                     "Content-Disposition": f'attachment; filename="{name}"'}, bytes(row["content"])


def _answer_file_key(answer_xml: str, question_id: str) -> str | None:
    try:
        root = ET.fromstring(answer_xml)
    except ET.ParseError:
        return None
    ns = {"a": ANSWERS_NS}
    for answer in root.findall("a:Answer", ns):
        if (answer.findtext("a:QuestionIdentifier", "", ns) or "").strip() == question_id:
            key = answer.findtext("a:UploadedFileKey", None, ns)
            return key.strip() if key else None
    return None
