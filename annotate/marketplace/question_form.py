"""MTurk's QuestionForm: parse the XML, render it as an HTML form, and turn a submission into
QuestionFormAnswers XML (FreeText / SelectionIdentifier / OtherSelectionText / UploadedFileKey).

Used for qualification tests and for HITs whose Question is a QuestionForm. Pure: no state, no
HTTP. Errors in a document are `QuestionFormError`; errors in a worker's submission are returned
per question so the page can show them beside the form.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from html import escape
from html.parser import HTMLParser
from typing import Mapping, Sequence
from xml.sax.saxutils import escape as xml_escape

QUESTION_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/"
ANSWERS_NS = QUESTION_NS + "2005-10-01/QuestionFormAnswers.xsd"
OTHER = "__other__"  # the value of the "other" choice; its text comes in `<id>.other`
SELECTION_STYLES = {"radiobutton", "checkbox", "list", "dropdown", "combobox", "multichooser"}


class QuestionFormError(ValueError):
    """The QuestionForm document is not one MTurk would accept."""


@dataclass
class FreeText:
    numeric: tuple[float | None, float | None] | None = None  # (min, max) when IsNumeric
    length: tuple[int | None, int | None] = (None, None)
    regex: tuple[str, str, str] | None = None  # (pattern, errorText, flags)
    default: str = ""
    lines: int = 1


@dataclass
class Selection:
    identifier: str
    html: str  # already rendered (escaped text, or sanitized formatted content)


@dataclass
class SelectionAnswer:
    selections: list[Selection]
    min_count: int = 1
    max_count: int = 1
    style: str = "radiobutton"
    other: FreeText | None = None


@dataclass
class FileUpload:
    min_bytes: int = 0
    max_bytes: int = 2_000_000_000


@dataclass
class Question:
    identifier: str
    display_name: str
    required: bool
    content: str  # rendered HTML
    answer: FreeText | SelectionAnswer | FileUpload


@dataclass
class QuestionForm:
    parts: list[str | Question] = field(default_factory=list)  # Overview HTML and Questions, in order

    @property
    def questions(self) -> list[Question]:
        return [p for p in self.parts if isinstance(p, Question)]


def is_question_form(xml: str) -> bool:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return False
    return root.tag.startswith("{" + QUESTION_NS) and root.tag.endswith("}QuestionForm")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _kids(node: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in node if _local(c.tag) == name]


def _kid(node: ET.Element, name: str) -> ET.Element | None:
    found = _kids(node, name)
    return found[0] if found else None


def _text(node: ET.Element | None) -> str:
    return "".join(node.itertext()).strip() if node is not None else ""


def _int(node: ET.Element | None, what: str, default: int | None) -> int | None:
    if node is None:
        return default
    value = _text(node)
    if not re.fullmatch(r"-?\d+", value):
        raise QuestionFormError(f"{what} must be a whole number, not {value!r}.")
    return int(value)


def _attr_int(node: ET.Element, name: str) -> int | None:
    value = node.get(name)
    if value is None:
        return None
    if not re.fullmatch(r"-?\d+", value.strip()):
        raise QuestionFormError(f"attribute {name} must be a whole number, not {value!r}.")
    return int(value)


# -- FormattedContent: MTurk accepts a restricted XHTML subset; we keep that subset and drop the rest.

_ALLOWED = {"a", "b", "blockquote", "br", "dd", "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i",
            "img", "li", "ol", "p", "pre", "code", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead",
            "tr", "tt", "u", "ul", "div", "span", "font", "small", "big", "cite", "col", "colgroup", "caption"}
_VOID = {"br", "hr", "img", "col"}


class _Sanitizer(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._skip = 0  # inside <script>/<style>

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1
            return
        if tag not in _ALLOWED or self._skip:
            return
        keep = []
        for name, value in attrs:
            value = value or ""
            if name in ("href", "src"):
                if re.match(r"(?i)^https?://", value.strip()):
                    keep.append(f' {name}="{escape(value.strip())}"')
            elif name in ("alt", "title", "colspan", "rowspan", "width", "height"):
                keep.append(f' {name}="{escape(value)}"')
        self.out.append(f"<{tag}{''.join(keep)}>")

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip = max(self._skip - 1, 0)
            return
        if tag in _ALLOWED and tag not in _VOID and not self._skip:
            self.out.append(f"</{tag}>")

    def handle_data(self, data):
        if not self._skip:
            self.out.append(escape(data))


def sanitize(html: str) -> str:
    parser = _Sanitizer()
    parser.feed(html)
    parser.close()
    return "".join(parser.out)


def _binary(node: ET.Element) -> str:
    mime = _kid(node, "MimeType")
    kind = _text(_kid(mime, "Type")) if mime is not None else ""
    url = _text(_kid(node, "DataURL"))
    alt = _text(_kid(node, "AltText"))
    if not re.match(r"(?i)^https?://", url):
        raise QuestionFormError(f"Binary DataURL must be an http(s) URL, not {url!r}.")
    if kind == "image":
        return f'<p><img src="{escape(url)}" alt="{escape(alt)}" style="max-width:100%"></p>'
    return f'<p><a href="{escape(url)}">{escape(alt or url)}</a></p>'


def _content(node: ET.Element) -> str:
    """Overview / QuestionContent / Selection content elements as HTML."""
    out: list[str] = []
    for c in node:
        name = _local(c.tag)
        if name == "Title":
            out.append(f"<h2>{escape(_text(c))}</h2>")
        elif name == "Text":
            out.append(f"<p>{escape(_text(c))}</p>")
        elif name == "List":
            out.append("<ul>" + "".join(f"<li>{escape(_text(i))}</li>" for i in _kids(c, "ListItem")) + "</ul>")
        elif name == "Binary":
            out.append(_binary(c))
        elif name == "FormattedContent":
            out.append(f"<div>{sanitize(c.text or '')}</div>")
        elif name in ("EmbeddedBinary", "Application"):
            out.append(f"<p><em>[{escape(name)} content is not shown by this marketplace]</em></p>")
        else:
            raise QuestionFormError(f"unexpected element {name} in {_local(node.tag)}.")
    return "".join(out)


def _free_text(node: ET.Element) -> FreeText:
    answer = FreeText()
    constraints = _kid(node, "Constraints")
    if constraints is not None:
        numeric = _kid(constraints, "IsNumeric")
        if numeric is not None:
            answer.numeric = (_attr_int(numeric, "minValue"), _attr_int(numeric, "maxValue"))
        length = _kid(constraints, "Length")
        if length is not None:
            answer.length = (_attr_int(length, "minLength"), _attr_int(length, "maxLength"))
        regex = _kid(constraints, "AnswerFormatRegex")
        if regex is not None:
            pattern = regex.get("regex") or ""
            try:
                re.compile(pattern)
            except re.error as exc:
                raise QuestionFormError(f"AnswerFormatRegex {pattern!r} is not a regular expression: {exc}") from None
            answer.regex = (pattern, regex.get("errorText") or "", regex.get("flags") or "")
    default = _kid(node, "DefaultText")
    answer.default = _text(default) if default is not None else ""
    answer.lines = _int(_kid(node, "NumberOfLinesSuggestion"), "NumberOfLinesSuggestion", 1) or 1
    return answer


def _selection_answer(node: ET.Element, qid: str) -> SelectionAnswer:
    selections_node = _kid(node, "Selections")
    if selections_node is None:
        raise QuestionFormError(f"question {qid}: SelectionAnswer needs Selections.")
    selections: list[Selection] = []
    for s in _kids(selections_node, "Selection"):
        sid = _text(_kid(s, "SelectionIdentifier"))
        if not sid:
            raise QuestionFormError(f"question {qid}: a Selection has no SelectionIdentifier.")
        if any(x.identifier == sid for x in selections):
            raise QuestionFormError(f"question {qid}: SelectionIdentifier {sid!r} is used twice.")
        if _kid(s, "Text") is not None:
            html = escape(_text(_kid(s, "Text")))
        elif _kid(s, "FormattedContent") is not None:
            html = sanitize(_kid(s, "FormattedContent").text or "")
        elif _kid(s, "Binary") is not None:
            html = _binary(_kid(s, "Binary"))
        else:
            html = escape(sid)
        selections.append(Selection(sid, html))
    if not selections:
        raise QuestionFormError(f"question {qid}: Selections has no Selection.")
    other_node = _kid(selections_node, "OtherSelection")
    style = _text(_kid(node, "StyleSuggestion")) or None
    if style is not None and style not in SELECTION_STYLES:
        raise QuestionFormError(f"question {qid}: StyleSuggestion {style!r} is not one of "
                                f"{', '.join(sorted(SELECTION_STYLES))}.")
    min_count = _int(_kid(node, "MinSelectionCount"), "MinSelectionCount", 1)
    max_count = _int(_kid(node, "MaxSelectionCount"), "MaxSelectionCount", None)
    if max_count is None:
        max_count = 1 if style in (None, "radiobutton", "dropdown", "combobox") else len(selections)
    if min_count < 0 or max_count < max(min_count, 1):
        raise QuestionFormError(f"question {qid}: MinSelectionCount {min_count} and MaxSelectionCount {max_count} "
                                f"do not fit together.")
    if style is None:
        style = "radiobutton" if max_count == 1 else "checkbox"
    return SelectionAnswer(selections, min_count, max_count, style,
                           _free_text(other_node) if other_node is not None else None)


def parse(xml: str) -> QuestionForm:
    """A QuestionForm document, checked as MTurk checks it."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise QuestionFormError(f"the QuestionForm is not well-formed XML: {exc}") from None
    if not (root.tag.startswith("{" + QUESTION_NS) and _local(root.tag) == "QuestionForm"):
        raise QuestionFormError(f"the root element {root.tag!r} is not a QuestionForm.")
    form = QuestionForm()
    seen: set[str] = set()
    for node in root:
        name = _local(node.tag)
        if name == "Overview":
            form.parts.append(_content(node))
            continue
        if name != "Question":
            raise QuestionFormError(f"unexpected element {name} in QuestionForm.")
        qid = _text(_kid(node, "QuestionIdentifier"))
        if not qid:
            raise QuestionFormError("a Question has no QuestionIdentifier.")
        if qid in seen:
            raise QuestionFormError(f"QuestionIdentifier {qid!r} is used twice.")
        seen.add(qid)
        spec = _kid(node, "AnswerSpecification")
        kinds = list(spec) if spec is not None else []
        if len(kinds) != 1:
            raise QuestionFormError(f"question {qid}: AnswerSpecification must hold exactly one of FreeTextAnswer, "
                                    f"SelectionAnswer, FileUploadAnswer.")
        kind = _local(kinds[0].tag)
        if kind == "FreeTextAnswer":
            answer: FreeText | SelectionAnswer | FileUpload = _free_text(kinds[0])
        elif kind == "SelectionAnswer":
            answer = _selection_answer(kinds[0], qid)
        elif kind == "FileUploadAnswer":
            answer = FileUpload(_int(_kid(kinds[0], "MinFileSizeInBytes"), "MinFileSizeInBytes", 0) or 0,
                                _int(_kid(kinds[0], "MaxFileSizeInBytes"), "MaxFileSizeInBytes", 2_000_000_000))
            if answer.max_bytes < answer.min_bytes:
                raise QuestionFormError(f"question {qid}: MaxFileSizeInBytes is below MinFileSizeInBytes.")
        else:
            raise QuestionFormError(f"question {qid}: unknown answer kind {kind}.")
        required = _text(_kid(node, "IsRequired")).lower()
        content = _kid(node, "QuestionContent")
        form.parts.append(Question(qid, _text(_kid(node, "DisplayName")), required == "true",
                                   _content(content) if content is not None else "", answer))
    if not form.questions:
        raise QuestionFormError("a QuestionForm needs at least one Question.")
    return form


# -- rendering ------------------------------------------------------------------------------------

def _render_question(q: Question, values: Mapping[str, list[str]], error: str | None) -> str:
    name = escape(q.identifier)
    out = [f'<fieldset class="question" data-question="{name}">']
    if q.display_name:
        out.append(f"<legend>{escape(q.display_name)}</legend>")
    out.append(q.content)
    if error:
        out.append(f'<p class="error" data-question="{name}">{escape(error)}</p>')
    a = q.answer
    required = " required" if q.required else ""
    if isinstance(a, FreeText):
        value = (values.get(q.identifier) or [a.default])[0]
        if a.lines > 1:
            out.append(f'<textarea name="{name}" rows="{a.lines}"{required}>{escape(value)}</textarea>')
        else:
            kind = "number" if a.numeric else "text"
            out.append(f'<input type="{kind}" name="{name}" value="{escape(value)}"{required}>')
    elif isinstance(a, SelectionAnswer):
        chosen = set(values.get(q.identifier) or [])
        if a.style in ("list", "dropdown", "combobox", "multichooser"):
            multiple = " multiple" if a.max_count > 1 else ""
            out.append(f'<select name="{name}"{multiple}>')
            if not multiple:
                out.append('<option value="">&mdash;</option>')
            for s in a.selections:
                sel = " selected" if s.identifier in chosen else ""
                out.append(f'<option value="{escape(s.identifier)}"{sel}>{escape(_plain(s.html))}</option>')
            if a.other is not None:
                out.append(f'<option value="{OTHER}">Other</option>')
            out.append("</select>")
        else:
            kind = "radio" if a.max_count == 1 else "checkbox"
            for s in a.selections:
                checked = " checked" if s.identifier in chosen else ""
                out.append(f'<label><input type="{kind}" name="{name}" value="{escape(s.identifier)}"{checked}> '
                           f"{s.html}</label><br>")
            if a.other is not None:
                out.append(f'<label><input type="{kind}" name="{name}" value="{OTHER}"> Other:</label> ')
        if a.other is not None:
            out.append(f'<input type="text" name="{name}.other">')
    else:
        out.append(f'<input type="file" name="{name}"{required}>')
    out.append("</fieldset>")
    return "".join(out)


def _plain(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">") \
        .replace("&quot;", '"').replace("&#x27;", "'")


def render(form: QuestionForm, action: str, hidden: Sequence[tuple[str, str]] = (),
           values: Mapping[str, list[str]] | None = None, errors: Mapping[str, str] | None = None,
           submit_label: str | None = "Submit") -> str:
    """The form as HTML (a fragment: one <form>). `values` and `errors` re-show a refused submission;
    without a `submit_label` the form has no submit button (a preview)."""
    values = values or {}
    errors = errors or {}
    multipart = any(isinstance(q.answer, FileUpload) for q in form.questions)
    enctype = ' enctype="multipart/form-data"' if multipart else ""
    out = [f'<form method="post" action="{escape(action)}"{enctype} class="question-form">']
    out.extend(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in hidden)
    for part in form.parts:
        out.append(part if isinstance(part, str) else _render_question(part, values, errors.get(part.identifier)))
    if submit_label is not None:
        out.append(f'<p><input type="submit" name="submitButton" value="{escape(submit_label)}"></p>')
    out.append("</form>")
    return "".join(out)


# -- answers ------------------------------------------------------------------------------------

@dataclass
class Upload:
    filename: str
    content: bytes


def _check_text(a: FreeText, value: str) -> str | None:
    low, high = a.length
    if low is not None and len(value) < low:
        return f"The answer must be at least {low} characters long."
    if high is not None and len(value) > high:
        return f"The answer must be at most {high} characters long."
    if a.numeric is not None and value:
        try:
            number = float(value)
        except ValueError:
            return "The answer must be a number."
        if a.numeric[0] is not None and number < a.numeric[0]:
            return f"The answer must be at least {a.numeric[0]}."
        if a.numeric[1] is not None and number > a.numeric[1]:
            return f"The answer must be at most {a.numeric[1]}."
    if a.regex is not None and value:
        pattern, error_text, flags = a.regex
        if not re.fullmatch(pattern, value, re.IGNORECASE if "i" in flags else 0):
            return error_text or f"The answer must match {pattern}."
    return None


def collect(form: QuestionForm, fields: Sequence[tuple[str, str]],
            files: Mapping[str, Upload] | None = None) -> tuple[list[dict], dict[str, str]]:
    """A worker's submission as answers (one dict per answered question) and errors by question."""
    files = files or {}
    given: dict[str, list[str]] = {}
    for k, v in fields:
        given.setdefault(k, []).append(v)
    answers: list[dict] = []
    errors: dict[str, str] = {}
    for q in form.questions:
        a = q.answer
        if isinstance(a, FreeText):
            value = (given.get(q.identifier) or [""])[0]
            if not value.strip():
                if q.required:
                    errors[q.identifier] = "This question needs an answer."
                continue
            problem = _check_text(a, value)
            if problem:
                errors[q.identifier] = problem
                continue
            answers.append({"id": q.identifier, "free_text": value})
        elif isinstance(a, SelectionAnswer):
            picked = [v for v in given.get(q.identifier, []) if v]
            known = {s.identifier for s in a.selections}
            other_text = (given.get(q.identifier + ".other") or [""])[0].strip()
            unknown = [v for v in picked if v not in known and v != OTHER]
            if unknown:
                errors[q.identifier] = f"{unknown[0]!r} is not one of the choices."
                continue
            if not picked:
                if q.required:
                    errors[q.identifier] = "This question needs an answer."
                continue
            if not a.min_count <= len(picked) <= a.max_count:
                errors[q.identifier] = (f"Choose between {a.min_count} and {a.max_count} options."
                                        if a.max_count > 1 else "Choose one option.")
                continue
            entry: dict = {"id": q.identifier, "selections": [v for v in picked if v != OTHER]}
            if OTHER in picked:
                if a.other is None or not other_text:
                    errors[q.identifier] = "Say what the other choice is."
                    continue
                problem = _check_text(a.other, other_text)
                if problem:
                    errors[q.identifier] = problem
                    continue
                entry["other"] = other_text
            answers.append(entry)
        else:
            upload = files.get(q.identifier)
            if upload is None or not upload.filename:
                if q.required:
                    errors[q.identifier] = "This question needs a file."
                continue
            size = len(upload.content)
            if not a.min_bytes <= size <= a.max_bytes:
                errors[q.identifier] = f"The file must be between {a.min_bytes} and {a.max_bytes} bytes."
                continue
            answers.append({"id": q.identifier, "upload": upload})
    return answers, errors


def answers_xml(answers: Sequence[dict], file_keys: Mapping[str, str] | None = None) -> str:
    """QuestionFormAnswers XML for collected answers (`file_keys`: question id -> UploadedFileKey)."""
    def text(value: str) -> str:
        return xml_escape(value).encode("ascii", "xmlcharrefreplace").decode("ascii")

    parts = ['<?xml version="1.0" encoding="ASCII"?>', f'<QuestionFormAnswers xmlns="{ANSWERS_NS}">']
    for a in answers:
        parts.append(f"<Answer><QuestionIdentifier>{text(a['id'])}</QuestionIdentifier>")
        if "free_text" in a:
            parts.append(f"<FreeText>{text(a['free_text'])}</FreeText>")
        elif "selections" in a:
            parts.extend(f"<SelectionIdentifier>{text(s)}</SelectionIdentifier>" for s in a["selections"])
            if "other" in a:
                parts.append(f"<OtherSelectionText>{text(a['other'])}</OtherSelectionText>")
        else:
            parts.append(f"<UploadedFileSizeInBytes>{len(a['upload'].content)}</UploadedFileSizeInBytes>"
                         f"<UploadedFileKey>{text((file_keys or {})[a['id']])}</UploadedFileKey>")
        parts.append("</Answer>")
    parts.append("</QuestionFormAnswers>")
    return "".join(parts)
