"""HIT templates: jinja2 over hit_templates/ (and the batch directory), rendered per item
into HTMLQuestion XML.

Templates are autoescaped and use StrictUndefined, so a misspelt column is an error before
anything is posted, not an empty box in front of workers. Every question is size-checked
against MTurk's 65,535-byte limit while rendering.

A template sees:
    item          the item's input columns (never the hidden gold column)
    item_id       the item's id
    labels        the task's labels, in order
    field         the form field name (QuestionIdentifier) that carries the answer
    title, instructions
    submit_url    where the form posts (externalSubmit of the target)
    media(value)  a URL a worker's browser can load for an item's image or file
    inline(path)  a small local file embedded in the question itself as a data: URL (any target)
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
from importlib import resources
from pathlib import Path
from typing import Callable
from urllib.parse import quote
from xml.parsers.expat import ExpatError, ParserCreate

import jinja2

from annotate.config import Batch, Item
from annotate.errors import UserError
from annotate.limits import QUESTION_MAX_BYTES, xml_invalid

HTML_QUESTION_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2011-11-11/HTMLQuestion.xsd"
# Real MTurk: the form posts to externalSubmit on the worker site. The embedded marketplace
# serves the task page itself, so a relative action reaches it on whatever port it runs.
EXTERNAL_SUBMIT = {
    "local": "/mturk/externalSubmit",
    "sandbox": "https://workersandbox.mturk.com/mturk/externalSubmit",
    "production": "https://www.mturk.com/mturk/externalSubmit",
}
INLINE_MEDIA_MAX_BYTES = 48_000  # a local file inlined as a data: URL must leave room in the 64 KB question


def templates_dir() -> Path:
    return Path(str(resources.files("annotate.hit_templates")))


class _Loader(jinja2.FileSystemLoader):
    """jinja2's file loader, naming the file when a template (or one it includes) is not UTF-8."""

    def get_source(self, environment, template):
        try:
            return super().get_source(environment, template)
        except UnicodeDecodeError as exc:
            path = next((Path(d) / template for d in self.searchpath if (Path(d) / template).is_file()), Path(template))
            raw = path.read_bytes() if path.is_file() else b""
            line = raw[: exc.start].count(b"\n") + 1 if raw else None
            raise UserError(f"template is not UTF-8 text (byte 0x{exc.object[exc.start]:02x})",
                            file=str(path), line=line) from None


def shortcut_keys(labels: list[str]) -> list[str | None]:
    """The key that picks each label, as the choice lists hint it: the label itself when every
    label is a distinct single digit (digits: key 3 picks "3", not the fourth label), else 1-9 and
    0 by position; None past the tenth."""
    if len(set(labels)) == len(labels) and all(len(str(label)) == 1 and str(label).isdigit() for label in labels):
        return [str(label) for label in labels]
    return [str((i + 1) % 10) if i < 10 else None for i in range(len(labels))]


def environment(batch_dir: Path | None = None) -> jinja2.Environment:
    search = ([str(batch_dir)] if batch_dir else []) + [str(templates_dir())]
    env = jinja2.Environment(
        loader=_Loader(search),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals["shortcut_keys"] = shortcut_keys
    return env


def xml_parser():
    """A fresh expat parser: it only checks well-formedness (no entities, no DTD fetched)."""
    return ParserCreate()


def _template_position(exc: BaseException, default: str | None) -> tuple[str | None, int | None]:
    """The template file and line an exception came from: jinja2 rewrites a rendering traceback so that
    its frames carry the template's own file name and line numbers."""
    file, line = default, None
    tb = exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name and not name.endswith(".py") and not name.startswith("<") and Path(name).is_file():
            file, line = name, tb.tb_lineno
        tb = tb.tb_next
    return file, line


def cdata(text: str) -> str:
    """Wrap text in CDATA, splitting any ']]>' so the section cannot end early."""
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def html_question(html: str, frame_height: int = 0) -> str:
    return (
        f'<HTMLQuestion xmlns="{HTML_QUESTION_NS}">'
        f"<HTMLContent>{cdata(html)}</HTMLContent>"
        f"<FrameHeight>{int(frame_height)}</FrameHeight>"
        "</HTMLQuestion>"
    )


class MediaResolver:
    """Turns an item's media reference into a URL a worker's browser can load on the target."""

    def __init__(self, batch: Batch, target: str, presign: Callable[[str, int], str] | None = None):
        self.batch = batch
        self.target = target
        self.presign = presign
        self.served = False  # whether any rendered question points at files the local marketplace serves

    def __call__(self, value: object) -> str:
        ref = str(value)
        if ref.startswith(("https://", "http://", "data:")):
            return ref
        if ref.startswith("s3://"):
            if self.presign is None:
                raise UserError(f"cannot presign {ref}: no S3 client for this target")
            # Valid for the HIT's lifetime plus one assignment duration, so a worker who accepts
            # at the last moment still sees the image.
            return self.presign(ref, self.batch.hit.lifetime + self.batch.hit.assignment_duration)
        if self.target != "local":
            raise UserError(f"{ref!r} is a local file, which MTurk workers cannot load; upload it to S3 "
                            "and reference it as s3://bucket/key (or an https:// URL), or embed a small "
                            "file with inline(...) in the template")
        path = (self.batch.dir / ref) if not Path(ref).is_absolute() else Path(ref)
        root = self.batch.dir.resolve()
        if path.resolve().is_relative_to(root):
            if not path.is_file():
                raise UserError(f"media file not found: {path}")
            # Served by the local marketplace (the batch directory is registered when posting);
            # a relative URL, so it works on whatever port the marketplace runs.
            self.served = True
            return local_media_prefix(root) + quote(path.resolve().relative_to(root).as_posix())
        return self.inline(ref)

    def inline(self, value: object) -> str:
        """A local file as a data: URL inside the question (bounded so the question stays under 64 KB)."""
        ref = str(value)
        if ref.startswith("data:"):
            return ref
        path = (self.batch.dir / ref) if not Path(ref).is_absolute() else Path(ref)
        if not path.is_file():
            raise UserError(f"media file not found: {path}")
        data = path.read_bytes()
        if len(data) > INLINE_MEDIA_MAX_BYTES:
            raise UserError(f"{path} is {len(data)} bytes; local media is inlined into the question and must be "
                            f"under {INLINE_MEDIA_MAX_BYTES} bytes (serve larger files over https or s3)")
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def local_media_prefix(root: Path) -> str:
    """Where the local marketplace serves a registered directory: /media/<name>/, the name being the
    first 16 hex digits of the SHA-256 of the directory's absolute path (the marketplace's rule;
    `register_local_media` checks that the two agree)."""
    return "/media/" + hashlib.sha256(str(Path(root).resolve()).encode("utf-8")).hexdigest()[:16] + "/"


def register_local_media(marketplace_url: str, root: Path, db_path: str | Path | None = None) -> str:
    """Ask the local marketplace to serve the batch directory `root` (its own extension, POST /_media).

    The marketplace registers media only for a request with its key: ANNOTATE_MARKETPLACE_KEY if
    set, else that of a marketplace this process runs at that URL, else the one kept in `db_path`
    (the project home's marketplace database, which `annotate marketplace serve` uses by default).
    """
    import json
    import os
    import urllib.error
    import urllib.parse
    import urllib.request

    from annotate.marketplace.secret import ENV_VAR, KEY_HEADER, read_key, serving_key

    key = os.environ.get(ENV_VAR) or serving_key(urllib.parse.urlsplit(marketplace_url).netloc) \
        or (read_key(db_path) if db_path is not None else None)
    data = urllib.parse.urlencode({"root": str(Path(root).resolve())}).encode()
    request = urllib.request.Request(marketplace_url.rstrip("/") + "/_media", data=data, headers={KEY_HEADER: key or ""})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            prefix = json.loads(r.read())["prefix"]
    except urllib.error.HTTPError as exc:
        reason = exc.read().decode("utf-8", "replace")[:300]
        if exc.code == 403:
            raise UserError(f"the marketplace at {marketplace_url} refused to serve {root}'s media: it needs its key, "
                            f"which is not in {db_path or 'this process'}; when it runs on another database, set "
                            f"{ENV_VAR} to the key in that database (sqlite3 DB 'select key from marketplace_key')",
                            field=ENV_VAR) from None
        raise UserError(f"the marketplace at {marketplace_url} refused to serve {root}'s media: {reason}",
                        file=str(root)) from None
    if prefix != local_media_prefix(root):
        raise RuntimeError(f"the marketplace serves {root} under {prefix}, not {local_media_prefix(root)}")
    return prefix


def s3_presigner(s3_client) -> Callable[[str, int], str]:
    def presign(uri: str, expires: int) -> str:
        bucket, _, key = uri[len("s3://"):].partition("/")
        return s3_client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=int(expires))

    return presign


class QuestionRenderer:
    """Renders a batch's items into HTMLQuestion XML for one target."""

    def __init__(self, batch: Batch, target: str = "local", presign: Callable[[str, int], str] | None = None):
        self.batch = batch
        self.target = target
        self.env = environment(batch.dir)
        self.media = MediaResolver(batch, target, presign)
        try:
            self.template = self.env.get_template(batch.template)
        except jinja2.TemplateNotFound:
            raise UserError(f"template {batch.template!r} not found in {batch.dir} or {templates_dir()}",
                            file=str(batch.dir / "batch.toml"), field="batch.template") from None
        except jinja2.TemplateSyntaxError as exc:
            raise UserError(f"template syntax error: {exc.message}", file=exc.filename or batch.template, line=exc.lineno) from None
        except UserError as exc:
            raise UserError(exc.message, file=exc.file, line=exc.line, field=exc.field or "batch.template") from None

    def html(self, item: Item) -> str:
        context = {
            "item": item.data,
            "item_id": item.id,
            "labels": self.batch.labels,
            "field": self.batch.answer_field,
            "title": self.batch.hit.title,
            "instructions": self.batch.instructions,
            "submit_url": EXTERNAL_SUBMIT[self.target],
            "media": self.media,
            "inline": self.media.inline,
        }
        where = f"{self.batch.items_file}:{item.line}"
        try:
            return self.template.render(context)
        except jinja2.UndefinedError as exc:
            raise UserError(f"template {self.batch.template!r}: {exc.message} (rendering item {item.id!r} from {where})",
                            file=self.template.filename) from None
        except jinja2.TemplateNotFound as exc:
            # an {% include %} or {% extends %} of a file that is not there
            file, line = _template_position(exc, self.template.filename)
            raise UserError(f"template {exc.name!r} (included) not found in {self.batch.dir} or {templates_dir()}",
                            file=file, line=line) from None
        except jinja2.TemplateSyntaxError as exc:
            raise UserError(f"template syntax error: {exc.message}", file=exc.filename or self.batch.template, line=exc.lineno) from None
        except UserError as exc:
            raise UserError(f"item {item.id!r} ({where}): {exc.message}", file=exc.file, line=exc.line,
                            field=exc.field) from None
        except Exception as exc:  # noqa: BLE001 - a template is the requester's code: {{ 1//0 }}, a bad filter argument…
            file, line = _template_position(exc, self.template.filename)
            detail = str(exc).encode("utf-8", "backslashreplace").decode("utf-8")  # printable, whatever it quotes
            raise UserError(f"template failed on item {item.id!r} ({where}): {type(exc).__name__}: {detail}",
                            file=file, line=line) from None

    def question(self, item: Item) -> str:
        xml = html_question(self.html(item), self.batch.hit.frame_height)
        size = len(xml.encode("utf-8", "surrogatepass"))
        if size > QUESTION_MAX_BYTES:
            raise UserError(f"the question for item {item.id!r} is {size:,} bytes; MTurk's limit is {QUESTION_MAX_BYTES:,} "
                            f"(shrink the template or the item's media)", file=f"{self.batch.items_file}", line=item.line)
        # MTurk parses the Question as XML and refuses the HIT if it is not well-formed (a control
        # character from the template or a filter); found here, nothing has been paid for yet.
        try:
            xml_parser().Parse(xml.encode("utf-8", "surrogatepass"), True)
        except ExpatError as exc:
            bad = xml_invalid(xml)
            raise UserError(f"the question for item {item.id!r} ({self.batch.items_file}:{item.line}) is not well-formed "
                            f"XML ({'it holds ' + bad if bad else exc}); MTurk would refuse its HIT",
                            file=self.template.filename) from None
        return xml

    @property
    def served_local_media(self) -> bool:
        return self.media.served

    def questions(self, items: list[Item] | None = None) -> dict[str, str]:
        """Every item's question, rendered and size-checked before anything is posted."""
        return {item.id: self.question(item) for item in (items if items is not None else self.batch.items)}
