"""A batch's qualification test: `[workers] test = …` in batch.toml.

The test is a QualificationType whose Test is a QuestionForm (one multiple-choice question per
test question) and whose AnswerKey scores it as a percentage (QualificationValueMapping /
PercentageMapping); the batch's HITs then require a score of at least `passing_score`, guarding
Discover, Preview and Accept, so a worker who failed never sees them.

    [workers]
    test = "known"                # the batch's known-answer items, or a file of questions (below)
    test_questions = 5            # how many (default: half the known answers, at most 10; a file: all)
    passing_score = 80            # percent
    retry_delay = "1d"            # before a worker may take the test again ("never": once only)
    test_duration = "10m"         # time to answer it

A file of questions is CSV or JSON Lines, one question a row: `question` (text), `answer`,
optional `options` (CSV: separated by "|"; JSON: a list; default the task's labels) and `image`
(an https URL, or a file in the batch directory on the local target).

Items used as questions are chosen deterministically (by a digest of the batch name and item id,
so the file's order does not decide) and are held back from the batch's HITs: a worker who took
the test would otherwise meet its answers again among the known-answer items that score them.
Everything is built and checked with the marketplace's own QuestionForm and AnswerKey parsers
when the batch is loaded, before any call.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import quote
from xml.sax.saxutils import escape

from annotate.errors import UserError
from annotate.limits import input_shape, problems, xml_invalid

QUESTION_FORM_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2017-11-06/QuestionForm.xsd"
ANSWER_KEY_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/AnswerKey.xsd"
TEST_DOCUMENT_MAX = 65_535  # Test and AnswerKey, bytes (MTurk's API reference)
TEST_QUESTIONS_MAX = 50
DEFAULT_PASSING = 80
DEFAULT_RETRY = "1d"
DEFAULT_DURATION = "10m"
SETTINGS = {"test", "test_questions", "passing_score", "retry_delay", "test_duration"}
_IMAGE_TYPES = {"png": "png", "jpg": "jpeg", "jpeg": "jpeg", "gif": "gif", "webp": "webp", "svg": "svg+xml"}
PLACEHOLDER = "https://marketplace.invalid"  # where local media would be, for checking the XML offline


@dataclass(frozen=True)
class TestQuestion:
    lines: tuple[str, ...]  # text shown, one paragraph each
    image: str | None  # an http(s) URL or a file in the batch directory
    options: tuple[str, ...]
    answer: str


@dataclass(frozen=True)
class QualificationTest:
    source: str  # "known" or the file's path as written
    questions: tuple[TestQuestion, ...]
    passing_score: int
    retry_delay: int | None  # None: a worker takes the test once
    duration: int
    item_ids: frozenset[str]  # items used as questions (held back from the HITs)

    def digest(self) -> str:
        """What the test is, independent of where its media are served: same test, same type."""
        text = json.dumps([self.source, [list(q.lines) + [q.image, list(q.options), q.answer] for q in self.questions],
                           self.passing_score, self.retry_delay, self.duration], sort_keys=True)
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    def requirement(self, type_id: str) -> dict[str, Any]:
        """The QualificationRequirement the batch's HITs carry: a passing score, guarding everything."""
        return {"QualificationTypeId": type_id, "Comparator": "GreaterThanOrEqualTo",
                "IntegerValues": [self.passing_score], "ActionsGuarded": "DiscoverPreviewAndAccept"}


def _choose(items: Sequence, batch_name: str, n: int) -> list:
    """n items, the same ones every time for this batch, spread over the file."""
    return sorted(items, key=lambda i: hashlib.sha256(f"{batch_name}\0{i.id}".encode("utf-8", "surrogatepass"))
                  .hexdigest())[:n]


def _int_setting(w: dict, key: str, file: str, low: int, high: int, default: int | None) -> int | None:
    value = w.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UserError(f"expected a whole number from {low} to {high}, got {value!r}", file=file, field=f"workers.{key}")
    return value


def load_test(w: dict, *, file: str, root: Path, name: str, items: Sequence, labels: list[str],
              single_label: bool, title: str = "", instructions: str = "") -> QualificationTest | None:
    """The batch's test from its [workers] table, checked; None without `test`."""
    from annotate.config import parse_duration

    stray = sorted(k for k in SETTINGS - {"test"} if k in w)
    if "test" not in w:
        if stray:
            raise UserError("set only with workers.test", file=file, field=f"workers.{stray[0]}")
        return None
    source = w["test"]
    if not isinstance(source, str) or not source.strip():
        raise UserError(f"expected \"known\" (the batch's known-answer items) or a file of questions, got {source!r}",
                        file=file, field="workers.test")
    passing = _int_setting(w, "passing_score", file, 1, 100, DEFAULT_PASSING)
    retry_value = w.get("retry_delay", DEFAULT_RETRY)
    retry = None if retry_value == "never" else parse_duration(retry_value, "workers.retry_delay", file)
    duration = parse_duration(w.get("test_duration", DEFAULT_DURATION), "workers.test_duration", file)
    if source == "known":
        if not single_label:
            raise UserError("a test built from known answers needs a single-label task (one label per item); "
                            "give a file of questions instead", file=file, field="workers.test")
        known = [i for i in items if i.known is not None]
        if not known:
            raise UserError("no item has a known answer (set [batch] known_answer_column and fill it in)",
                            file=file, field="workers.test")
        n = _int_setting(w, "test_questions", file, 1, min(len(known), TEST_QUESTIONS_MAX),
                         max(1, min(10, len(known) // 2)))
        chosen = _choose(known, name, n)
        questions = tuple(_item_question(i, labels) for i in chosen)
        test = QualificationTest("known", questions, passing, retry, duration, frozenset(i.id for i in chosen))
    else:
        path = root / source
        questions = _read_questions(path, labels)
        n = _int_setting(w, "test_questions", file, 1, min(len(questions), TEST_QUESTIONS_MAX),
                         min(len(questions), TEST_QUESTIONS_MAX))
        test = QualificationTest(source, tuple(questions[:n]), passing, retry, duration, frozenset())
    check(test, root, file, f"Qualification test: {title}", instructions)
    return test


def _item_question(item, labels: list[str]) -> TestQuestion:
    """A known-answer item as a question: its picture (source-ref) or text, never its answer."""
    data = dict(item.data)
    image = str(data["source-ref"]) if data.get("source-ref") not in (None, "") else None
    lines = []
    if image is None:
        if data.get("source") not in (None, ""):
            lines.append(str(data["source"]))
        else:  # every input column but the id (the answer's column is not in `data`)
            lines += [f"{k}: {v if isinstance(v, str) else json.dumps(v)}" for k, v in data.items()
                      if str(v) != item.id and v not in (None, "")]
    return TestQuestion(tuple(lines), image, tuple(labels), str(item.known))


def _read_questions(path: Path, labels: list[str]) -> list[TestQuestion]:
    file = str(path)
    if not path.is_file():
        raise UserError("file of test questions not found", file=file)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"not UTF-8 text (byte {exc.start})", file=file) from None
    rows: list[tuple[int, dict]] = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        try:
            rows = [(reader.line_num, row) for row in reader if any((v or "").strip() for v in row.values())]
        except csv.Error as exc:
            raise UserError(f"CSV error: {exc}", file=file, line=reader.line_num) from None
    elif path.suffix.lower() in (".jsonl", ".json"):
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise UserError(f"not JSON: {exc.msg}", file=file, line=n) from None
                if not isinstance(row, dict):
                    raise UserError("each line must be a JSON object", file=file, line=n)
                rows.append((n, row))
    else:
        raise UserError("a file of test questions is .csv or .jsonl", file=file)
    if not rows:
        raise UserError("no questions", file=file)
    questions = []
    for line, row in rows:
        question = row.get("question")
        if not isinstance(question, str) or not question.strip():
            raise UserError("missing question text", file=file, line=line, field="question")
        options = row.get("options")
        if options in (None, ""):
            options = list(labels)
        elif isinstance(options, str):
            options = [o.strip() for o in options.split("|") if o.strip()]
        if not isinstance(options, list) or len(options) < 2 or not all(isinstance(o, (str, int)) for o in options):
            raise UserError("options: at least two choices (CSV: a|b|c; JSON: a list)", file=file, line=line,
                            field="options")
        options = [str(o) for o in options]
        if len(set(options)) != len(options):
            raise UserError("options: a choice is listed twice", file=file, line=line, field="options")
        answer = row.get("answer")
        if answer is None or str(answer) not in options:
            raise UserError(f"answer {answer!r} is not one of the options ({', '.join(options)})", file=file,
                            line=line, field="answer")
        image = row.get("image") or None
        for value in [question, *options, *([image] if image else [])]:
            if (bad := xml_invalid(str(value))) is not None:
                raise UserError(f"holds {bad}, a character MTurk cannot take", file=file, line=line)
        questions.append(TestQuestion((question.strip(),), str(image) if image else None, tuple(options), str(answer)))
    return questions


# -- the documents --------------------------------------------------------------------------------

def media_resolver(root: Path, base_url: str | None) -> Callable[[str], str]:
    """An image reference as a URL a worker's browser can load: an http(s) URL as it is; a file in the
    batch directory where the local marketplace serves it (`base_url`; a placeholder when checking)."""
    from annotate.templates import local_media_prefix

    def resolve(ref: str) -> str:
        if ref.startswith(("https://", "http://")):
            return ref
        if ref.startswith("s3://"):
            raise UserError(f"{ref} is an s3:// URI; a QuestionForm shows only http(s) images: give the test "
                            f"https URLs (a file of questions with an image column)", field="workers.test")
        path = (root / ref).resolve()
        if not path.is_relative_to(root.resolve()) or not path.is_file():
            raise UserError(f"test image {ref!r} is not a file in the batch directory", field="workers.test")
        return (base_url or PLACEHOLDER).rstrip("/") + local_media_prefix(root) + \
            quote(path.relative_to(root.resolve()).as_posix())

    return resolve


def _binary(url: str) -> str:
    ext = url.rsplit("?", 1)[0].rsplit(".", 1)[-1].lower()
    kind, sub = ("image", _IMAGE_TYPES[ext]) if ext in _IMAGE_TYPES else ("application", "octet-stream")
    return (f"<Binary><MimeType><Type>{kind}</Type><SubType>{escape(sub)}</SubType></MimeType>"
            f"<DataURL>{escape(url)}</DataURL><AltText>the item</AltText></Binary>")


def test_xml(test: QualificationTest, title: str, instructions: str, media: Callable[[str], str]) -> str:
    """The Test: a QuestionForm with one single-choice question per test question (q1, q2, …)."""
    out = [f'<QuestionForm xmlns="{QUESTION_FORM_NS}"><Overview><Title>{escape(title)}</Title>']
    if instructions.strip():
        out.append(f"<Text>{escape(instructions.strip())}</Text>")
    out.append(f"<Text>Answer all {len(test.questions)} questions; a score of {test.passing_score}% or more "
               f"qualifies you for these HITs.</Text></Overview>")
    for n, q in enumerate(test.questions, start=1):
        content = "".join(f"<Text>{escape(line)}</Text>" for line in q.lines)
        if q.image:
            content += _binary(media(q.image))
        if not content:
            content = f"<Text>Question {n}</Text>"
        choices = "".join(f"<Selection><SelectionIdentifier>{escape(o)}</SelectionIdentifier><Text>{escape(o)}</Text>"
                          f"</Selection>" for o in q.options)
        out.append(f"<Question><QuestionIdentifier>q{n}</QuestionIdentifier><DisplayName>Question {n}</DisplayName>"
                   f"<IsRequired>true</IsRequired><QuestionContent>{content}</QuestionContent><AnswerSpecification>"
                   f"<SelectionAnswer><StyleSuggestion>radiobutton</StyleSuggestion><Selections>{choices}"
                   f"</Selections></SelectionAnswer></AnswerSpecification></Question>")
    out.append("</QuestionForm>")
    return "".join(out)


def answer_key_xml(test: QualificationTest) -> str:
    """The AnswerKey: a point per right answer, mapped to a percentage of them."""
    out = [f'<AnswerKey xmlns="{ANSWER_KEY_NS}">']
    for n, q in enumerate(test.questions, start=1):
        out.append(f"<Question><QuestionIdentifier>q{n}</QuestionIdentifier><AnswerOption><SelectionIdentifier>"
                   f"{escape(q.answer)}</SelectionIdentifier><AnswerScore>1</AnswerScore></AnswerOption></Question>")
    out.append(f"<QualificationValueMapping><PercentageMapping><MaximumSummedScore>{len(test.questions)}"
               f"</MaximumSummedScore></PercentageMapping></QualificationValueMapping></AnswerKey>")
    return "".join(out)


def type_name(batch_name: str, test: QualificationTest) -> str:
    """Unique per account and stable: a retry after a crash finds the type it created."""
    return f"annotate {batch_name} test {test.digest()[:12]}"


def create_request(batch, test: QualificationTest, base_url: str | None = None) -> dict[str, Any]:
    """CreateQualificationType's parameters for the batch's test."""
    params: dict[str, Any] = {
        "Name": type_name(batch.name, test),
        "Description": f"A short test for the HITs \"{batch.hit.title}\": {len(test.questions)} questions, "
                       f"{test.passing_score}% to pass."[:2000],
        "Keywords": batch.hit.keywords,
        "QualificationTypeStatus": "Active",
        "Test": test_xml(test, f"Qualification test: {batch.hit.title}", batch.instructions,
                         media_resolver(batch.dir, base_url)),
        "AnswerKey": answer_key_xml(test),
        "TestDurationInSeconds": test.duration,
    }
    if test.retry_delay is not None:
        params["RetryDelayInSeconds"] = test.retry_delay
    return params


def check(test: QualificationTest, root: Path, file: str, title: str, instructions: str) -> None:
    """Build the documents (media at a placeholder) and parse them as the marketplace does."""
    from annotate.marketplace import answer_key, question_form

    try:
        test_doc = test_xml(test, title, instructions, media_resolver(root, None))
    except UserError as exc:
        raise UserError(exc.args[0] if exc.args else str(exc), file=file, field="workers.test") from None
    key_doc = answer_key_xml(test)
    for what, doc in (("Test", test_doc), ("AnswerKey", key_doc)):
        if len(doc.encode("utf-8")) > TEST_DOCUMENT_MAX:
            raise UserError(f"the test's {what} would be {len(doc.encode('utf-8'))} bytes; MTurk takes at most "
                            f"{TEST_DOCUMENT_MAX}: use fewer test_questions", file=file, field="workers.test_questions")
    try:
        answer_key.parse(key_doc, question_form.parse(test_doc))
    except (question_form.QuestionFormError, answer_key.AnswerKeyError) as exc:
        raise UserError(f"the test MTurk would refuse: {exc}", file=file, field="workers.test") from None


def check_request(params: dict[str, Any], file: str) -> None:
    """The request as the service model constrains it (botocore's shapes, before the call)."""
    wrong = problems(params, input_shape("mturk", "CreateQualificationType"))
    if wrong:
        raise UserError("MTurk's CreateQualificationType would refuse: " + "; ".join(wrong), file=file,
                        field="workers.test")
