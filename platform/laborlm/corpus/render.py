"""Career -> resume-like text, with the character span of every occupation label. Pure and deterministic.

One implementation serves both scales. :func:`render_table` renders a whole canonical panel column-wise with
Arrow kernels: each distinct covariate value and occupation code is spelled once, entry lines are joined
element-wise, and per-person texts are list-joins over person offsets. Python never loops over person-years,
so a 10M-row panel renders in seconds per core. :func:`render` and :func:`render_with_spans` are the
per-career API (tests, evaluation, the CLI) and go through the same code on a one-person table, so the two
can never disagree.

Span and prompt convention (labor_llm_spec.md §4.4, §5.2): ``spans[t] = (start, end)`` are Python string
(code point) offsets with ``text[start:end] == label_t``. The prediction prompt of year t is
``text[:start - 1]``: everything up to and including ``"{year} ({education}):"``. The candidate
continuation that evaluation scores is ``text[start - 1:end + 1] == " " + label_t + "\\n"``, because the
line always ends right after the label. The first year has a prompt too (header only, no earlier lines).
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from laborlm import schema
from laborlm.corpus.template import LINE_END, OCCUPATION_FIELD, OCCUPATION_SEPARATOR, FieldFormat, Template
from laborlm.errors import SchemaError
from laborlm.occupations.taxonomy import Taxonomy

SPAN_TYPE = pa.struct([pa.field("start", pa.int32()), pa.field("end", pa.int32())])
CORPUS_SCHEMA = pa.schema(
    [
        pa.field(schema.PERSON_ID, pa.string(), nullable=False),
        pa.field(schema.SOURCE, pa.string(), nullable=False),
        pa.field(schema.SPLIT, pa.string()),
        pa.field("n_years", pa.int32(), nullable=False),
        pa.field("n_chars", pa.int32(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field(
            "spans", pa.list_(SPAN_TYPE), nullable=False
        ),  # [n_years] (start, end) of each occupation label
        pa.field("targets", pa.list_(pa.string()), nullable=False),  # [n_years] occupation codes (taxonomy's)
        pa.field("years", pa.list_(pa.int32()), nullable=False),  # [n_years]
    ]
)
# Rows (person-years) per Arrow pass: keeps each pass's strings far below the 2 GiB offset limit of pa.string.
_ROWS_PER_PASS = 1 << 20


@dataclass(frozen=True)
class RenderedCareer:
    """One career's text, the span of each occupation label in it, and the codes those labels stand for."""

    text: str
    spans: tuple[tuple[int, int], ...]  # [T] character offsets, text[start:end] == label of year t
    targets: tuple[str, ...]  # [T] occupation codes
    years: tuple[int, ...]  # [T]

    def prompt(self, t: int) -> str:
        """The context for predicting year t's occupation: the text up to and including year t's colon."""
        return self.text[: self.spans[t][0] - len(OCCUPATION_SEPARATOR)]

    def continuation(self, t: int) -> str:
        """The string evaluation scores for year t: ``" " + label + "\\n"`` (prefix-free over labels)."""
        start, end = self.spans[t]
        return self.text[start - len(OCCUPATION_SEPARATOR) : end + len(LINE_END)]

    @property
    def prompts(self) -> tuple[str, ...]:
        return tuple(self.prompt(t) for t in range(len(self.spans)))


def render(career: schema.Career, taxonomy: Taxonomy, template: Template) -> str:
    """The text of one career."""
    return render_with_spans(career, taxonomy, template).text


def render_with_spans(career: schema.Career, taxonomy: Taxonomy, template: Template) -> RenderedCareer:
    """The text of one career with its label spans, prompts and target codes."""
    row = render_table(career_table(career), taxonomy, template).to_pylist()[0]
    return RenderedCareer(
        text=row["text"],
        spans=tuple((s["start"], s["end"]) for s in row["spans"]),
        targets=tuple(row["targets"]),
        years=tuple(row["years"]),
    )


def career_table(career: schema.Career) -> pa.Table:
    """A one-person table with the panel columns a template can use (the inverse of ``iter_careers``)."""
    n = len(career)
    return pa.table(
        {
            schema.PERSON_ID: pa.array([career.person_id] * n, pa.string()),
            schema.YEAR: pa.array(np.asarray(career.years), pa.int32()),
            schema.OCCUPATION: pa.array(list(career.occupations), pa.string()),
            schema.EDUCATION: pa.array(list(career.education), pa.string()),
            schema.REGION: pa.array([career.region] * n, pa.string()),
            schema.GENDER: pa.array([career.gender] * n, pa.string()),
            schema.RACE: pa.array([career.race] * n, pa.string()),
            schema.BIRTH_YEAR: pa.array([career.birth_year] * n, pa.int32()),
            schema.SOURCE: pa.array([career.source] * n, pa.string()),
            schema.SPLIT: pa.array([career.split] * n, pa.string()),
        }
    )


def render_table(panel: pa.Table, taxonomy: Taxonomy, template: Template) -> pa.Table:
    """Render every person of a panel: one row per person (``CORPUS_SCHEMA``), in the panel's person order.

    Args:
        panel: canonical panel rows, clustered by person with years ascending (what the readers return).
            Columns a template does not use may be absent; ``split`` is copied through when present.

    Raises:
        SchemaError: an occupation is not a code of ``taxonomy``.
    """
    n = panel.num_rows
    if n == 0:
        return CORPUS_SCHEMA.empty_table()
    starts = _person_starts(panel.column(schema.PERSON_ID).combine_chunks())
    bounds = np.append(starts, n)
    labels = _label_lookup(taxonomy, template)
    pieces = []
    begin = 0
    while begin < len(starts):
        # Passes end on person boundaries and hold at least one person.
        stop = max(begin + 1, int(np.searchsorted(bounds, bounds[begin] + _ROWS_PER_PASS, side="right")) - 1)
        rows = slice(int(bounds[begin]), int(bounds[stop]))
        chunk = panel.slice(rows.start, rows.stop - rows.start)
        pieces.append(_render_pass(chunk, bounds[begin : stop + 1] - bounds[begin], labels, template))
        begin = stop
    return pa.concat_tables(pieces)


# --- internals -----------------------------------------------------------------------------------------------


def _render_pass(
    panel: pa.Table, bounds: np.ndarray, labels: Callable[[pa.Array], pa.Array], template: Template
) -> pa.Table:
    """Render the persons of ``panel``; ``bounds`` ``[P + 1]`` are their row offsets."""
    starts, counts = bounds[:-1], np.diff(bounds)
    first = pa.array(starts)
    offsets = pa.array(bounds.astype(np.int32))

    # Header: one string per person, lines that render empty (e.g. no birth year) left out.
    header = _join([_header_line(line, panel, first, template) for line in template.header], len(starts))

    # Entry lines: "<prefix> <label>\n" per person-year; the prefix is everything before the separator.
    occupation = panel.column(schema.OCCUPATION).combine_chunks()
    label = labels(occupation)
    entry_prefix = template.entry[: -len(OCCUPATION_SEPARATOR + "{" + OCCUPATION_FIELD + "}")]
    prefix = _join(
        [_entry_piece(lit, name, panel, template) for lit, name in _parts(entry_prefix)], panel.num_rows
    )
    lines = pc.binary_join_element_wise(prefix, OCCUPATION_SEPARATOR, label, LINE_END, "")
    body = pc.binary_join(pa.ListArray.from_arrays(offsets, lines), "")
    text = pc.binary_join_element_wise(header, body, template.end, "")

    # Spans: a label starts after the header, the person's earlier lines, its own prefix and the separator.
    header_len = _lengths(header)
    prefix_len = _lengths(prefix) + len(OCCUPATION_SEPARATOR)
    label_len = _lengths(label)
    line_len = prefix_len + label_len + len(LINE_END)
    line_start = np.cumsum(line_len) - line_len  # [rows] offset of each line in the pass's concatenated body
    line_start -= np.repeat(line_start[starts], counts)  # ... within its person's body
    start = np.repeat(header_len, counts) + line_start + prefix_len
    end = start + label_len
    spans = pa.StructArray.from_arrays(
        [pa.array(start, pa.int32()), pa.array(end, pa.int32())], fields=list(SPAN_TYPE)
    )

    split = (
        panel.column(schema.SPLIT).take(first)
        if schema.SPLIT in panel.column_names
        else pa.nulls(len(starts), pa.string())
    )
    return pa.Table.from_arrays(
        [
            panel.column(schema.PERSON_ID).take(first),
            panel.column(schema.SOURCE).take(first),
            split,
            pa.array(counts, pa.int32()),
            pa.array(_lengths(text), pa.int32()),
            text,
            pa.ListArray.from_arrays(offsets, spans),
            pa.ListArray.from_arrays(offsets, occupation.cast(pa.string())),
            pa.ListArray.from_arrays(offsets, panel.column(schema.YEAR).combine_chunks().cast(pa.int32())),
        ],
        schema=CORPUS_SCHEMA,
    )


def _person_starts(person_id: pa.Array) -> np.ndarray:
    """Row index where each person begins (rows are clustered by person)."""
    n = len(person_id)
    same = pc.equal(person_id.slice(1), person_id.slice(0, n - 1)).to_numpy(zero_copy_only=False)
    return np.flatnonzero(np.concatenate([[True], ~same.astype(bool)]))


def _parts(line: str) -> list[tuple[str, str | None]]:
    """A line as (literal, placeholder) pairs, as ``string.Formatter`` parses it (``{{`` is a literal brace)."""
    return [(literal, name) for literal, name, _, _ in string.Formatter().parse(line)]


def _header_line(line: str, panel: pa.Table, first: pa.Array, template: Template) -> pa.Array | pa.Scalar:
    pieces: list[pa.Array | pa.Scalar | str] = []
    for literal, name in _parts(line):
        pieces.append(literal)
        if name is not None:
            pieces.append(_spell(panel, name, template.field_format(name), first))
    rendered = _join(pieces, len(first))
    return pc.if_else(pc.equal(rendered, ""), "", pc.binary_join_element_wise(rendered, LINE_END, ""))


def _entry_piece(literal: str, name: str | None, panel: pa.Table, template: Template) -> pa.Array | str:
    if name is None:
        return literal
    if name == schema.YEAR:
        value = panel.column(schema.YEAR).combine_chunks().cast(pa.string())
    else:
        value = _spell(panel, name, template.field_format(name), None)
    return pc.binary_join_element_wise(literal, value, "")


def _spell(panel: pa.Table, name: str, fmt: FieldFormat, rows: pa.Array | None) -> pa.Array:
    """A covariate spelled by its field format, for every row (or the ``rows`` given); each distinct value once."""
    if name not in panel.column_names:
        length = panel.num_rows if rows is None else len(rows)
        return pa.repeat(pa.scalar(fmt.missing), length)
    column = panel.column(name).combine_chunks()
    if rows is not None:
        column = column.take(rows)
    encoded = pc.dictionary_encode(column.cast(pa.string()))
    values = encoded.dictionary.to_pylist()
    if name == schema.REGION:
        values = [schema.region_of(v) for v in values]  # the sentence speaks of regions, not states
    spelled = pa.array([fmt.spell(v) for v in values] + [fmt.missing], pa.string())
    return spelled.take(pc.fill_null(encoded.indices, len(values)))


def _label_lookup(taxonomy: Taxonomy, template: Template) -> Callable[[pa.Array], pa.Array]:
    """A function mapping occupation codes to their labels, resolving each distinct code once."""
    labels = template.occupation_labels(taxonomy)

    def lookup(codes: pa.Array) -> pa.Array:
        encoded = pc.dictionary_encode(codes.cast(pa.string()))
        distinct = encoded.dictionary.to_pylist()
        index = taxonomy.indices(distinct)
        if (index < 0).any() or encoded.indices.null_count:
            bad = [c for c, i in zip(distinct, index) if i < 0] or [None]
            raise SchemaError(
                f"occupation {bad[0]!r} is not a code of taxonomy '{taxonomy.name}'; validate the panel first"
            )
        return pa.array([labels[i] for i in index], pa.string()).take(encoded.indices)

    return lookup


def _join(pieces: list[pa.Array | pa.Scalar | str], length: int) -> pa.Array:
    """Element-wise concatenation that always returns an array of ``length`` (even of constant pieces)."""
    if not pieces:
        return pa.repeat(pa.scalar(""), length)
    result = pc.binary_join_element_wise(*pieces, "")
    return result if isinstance(result, pa.Array) else pa.repeat(result, length)


def _lengths(strings: pa.Array) -> np.ndarray:
    """Length in code points (Python ``len``), not UTF-8 bytes, of each string."""
    lengths: np.ndarray = pc.utf8_length(strings).to_numpy(zero_copy_only=False).astype(np.int64)
    return lengths
