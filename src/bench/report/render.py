"""How every report table is drawn: Markdown tables and LaTeX (booktabs) floats from a
header and rows of cell text, with one escaping, so that the comparison tables, the
headline and the reproduction table look alike and paste alike."""

from __future__ import annotations


def markdown_table(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    """The lines of a Markdown table; `align` has one letter per column, l or r."""
    rule = "|" + "".join("---:|" if a == "r" else "---|" for a in align)
    return [
        "| " + " | ".join(header) + " |",
        rule,
        *("| " + " | ".join(map(str, r)) + " |" for r in rows),
    ]


def tex_escape(text: str) -> str:
    """Plain text (with the ± † – < of the tables) as LaTeX."""
    for a, b in (
        ("\\", r"\textbackslash{}"),
        ("&", r"\&"),
        ("%", r"\%"),
        ("_", r"\_"),
        ("#", r"\#"),
        ("±", r"$\pm$"),
        ("†", r"$^\dagger$"),
        ("–", "--"),
        ("<", "$<$"),
    ):
        text = text.replace(a, b)
    return text


def latex_row(cells: list[str]) -> str:
    return " & ".join(cells) + r" \\"


def latex_grouped_header(groups: list[str], columns: list[str]) -> list[str]:
    """Two booktabs header lines: each group over its columns (with a rule), then the columns."""
    n = len(columns)
    return [
        latex_row(["", *(rf"\multicolumn{{{n}}}{{c}}{{{tex_escape(g)}}}" for g in groups)]),
        "".join(rf"\cmidrule(lr){{{2 + i * n}-{1 + (i + 1) * n}}}" for i in range(len(groups))),
        latex_row(["Method", *(c for _ in groups for c in columns)]),
    ]


def latex_table(
    caption: str, columns: str, head: list[str], body: list[str], wide: bool = False, size=""
) -> list[str]:
    """A booktabs float: `caption` (LaTeX already), column spec, header and body lines;
    `wide` spans both columns of a two-column paper, `size` e.g. \\small."""
    env = "table*" if wide else "table"
    return [
        rf"\begin{{{env}}}[t]",
        r"\centering",
        rf"\caption{{{caption}}}",
        *([size] if size else []),
        rf"\begin{{tabular}}{{{columns}}}",
        r"\toprule",
        *head,
        r"\midrule",
        *body,
        r"\bottomrule",
        r"\end{tabular}",
        rf"\end{{{env}}}",
    ]
