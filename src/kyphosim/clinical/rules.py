"""The rules table (``rules.yaml``): loading, checking and rendering as Markdown/HTML.

The table is data: each row has an id, a verdict, a condition (:mod:`kyphosim.clinical.expr`), what
to do when a fact is unknown, a plain-language reason and its source. Thresholds live in the
``parameters`` block with their sources, so a clinic can review or change them without code.
"""

from __future__ import annotations

import hashlib
import html
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from kyphosim.clinical.expr import Condition, ConditionError
from kyphosim.errors import InputError

__all__ = ["Rule", "RuleTable", "load_rules", "default_rules", "VERDICTS", "VERDICT_SEVERITY",
           "rules_markdown", "rules_html"]

Verdict = Literal["indicated", "relative_contraindication", "contraindicated", "insufficient_information"]
VERDICTS: tuple[str, ...] = ("indicated", "relative_contraindication", "insufficient_information", "contraindicated")
#: precedence when several rules fire (higher wins)
VERDICT_SEVERITY = {v: i for i, v in enumerate(VERDICTS)}


@dataclass(frozen=True)
class Rule:
    id: str
    verdict: str
    condition: Condition
    on_unknown: Literal["insufficient", "ignore"]
    reason: str
    source: str
    stage: int = 1

    @property
    def when(self) -> str:
        return self.condition.text


@dataclass(frozen=True)
class RuleTable:
    rules: tuple[Rule, ...]
    parameters: dict[str, float]
    parameter_info: dict[str, dict[str, Any]]
    version: int
    digest: str
    path: str

    def by_id(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.rules]


def load_rules(path: str | os.PathLike | None = None, *, known_facts: set[str] | None = None) -> RuleTable:
    """Load and check a rules table. Without ``path``, the packaged ``rules.yaml``.

    Checks: unique ids, known verdicts, conditions in the allowed language that read only known facts
    or parameters (``known_facts``, default :data:`kyphosim.clinical.engine.FACTS`).
    """
    import yaml

    if path is None:
        text = resources.files("kyphosim.clinical").joinpath("rules.yaml").read_text(encoding="utf-8")
        src = "kyphosim/clinical/rules.yaml"
    else:
        text = Path(path).read_text(encoding="utf-8")
        src = str(path)
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or data.get("schema") != "kyphosim.rules/1":
        raise InputError(f"{src}: not a kyphosim.rules/1 table")
    if known_facts is None:
        from kyphosim.clinical.engine import FACTS
        known_facts = set(FACTS)
    pinfo = dict(data.get("parameters") or {})
    params = {}
    for k, v in pinfo.items():
        if not isinstance(v, dict) or not isinstance(v.get("value"), (int, float)):
            raise InputError(f"{src}: parameter {k!r} needs a numeric 'value'")
        params[k] = v["value"]
    rules: list[Rule] = []
    seen: set[str] = set()
    allowed_keys = {"id", "verdict", "when", "on_unknown", "reason", "source", "stage"}
    for i, row in enumerate(data.get("rules") or []):
        rid = row.get("id", f"#{i}")
        extra = set(row) - allowed_keys
        if extra:
            raise InputError(f"{src}: rule {rid}: unknown field(s) {', '.join(sorted(extra))}")
        for key in ("id", "verdict", "when", "reason", "source"):
            if not row.get(key):
                raise InputError(f"{src}: rule {rid}: missing {key!r}")
        if rid in seen:
            raise InputError(f"{src}: duplicate rule id {rid}")
        seen.add(rid)
        if row["verdict"] not in VERDICTS:
            raise InputError(f"{src}: rule {rid}: unknown verdict {row['verdict']!r}")
        on_unknown = row.get("on_unknown", "ignore")
        if on_unknown not in ("insufficient", "ignore"):
            raise InputError(f"{src}: rule {rid}: on_unknown must be 'insufficient' or 'ignore'")
        try:
            cond = Condition.parse(str(row["when"]))
        except ConditionError as exc:
            raise InputError(f"{src}: rule {rid}: {exc}") from None
        unknown = cond.names - known_facts - set(params)
        if unknown:
            raise InputError(f"{src}: rule {rid}: condition names unknown fact(s) {', '.join(sorted(unknown))}")
        rules.append(Rule(id=rid, verdict=row["verdict"], condition=cond, on_unknown=on_unknown,
                          reason=" ".join(str(row["reason"]).split()), source=str(row["source"]),
                          stage=int(row.get("stage", 1))))
    return RuleTable(rules=tuple(rules), parameters=params, parameter_info=pinfo,
                     version=int(data.get("version", 1)),
                     digest=hashlib.sha256(text.encode()).hexdigest()[:16], path=src)


@lru_cache(maxsize=1)
def default_rules() -> RuleTable:
    """The packaged rules table (cached)."""
    return load_rules()


_VERDICT_LABEL = {"indicated": "supports treatment", "relative_contraindication": "relative contraindication",
                  "contraindicated": "contraindicated", "insufficient_information": "insufficient information"}


def rules_markdown(table: RuleTable | None = None) -> str:
    """The rules table and its parameters as Markdown (used in docs/clinical.md)."""
    t = table or default_rules()
    lines = ["| id | fires → verdict | condition | if a fact is unknown | reason | source |",
             "|---|---|---|---|---|---|"]
    for r in t.rules:
        cond = r.when.replace("|", "\\|")
        stage = " (stage 2)" if r.stage != 1 else ""
        lines.append(f"| `{r.id}` | {_VERDICT_LABEL[r.verdict]}{stage} | `{cond}` | {r.on_unknown} | "
                     f"{r.reason} | {r.source} |")
    lines += ["", "| parameter | value | unit | source |", "|---|---|---|---|"]
    for k, v in t.parameter_info.items():
        lines.append(f"| `{k}` | {v['value']:g} | {v.get('unit', '')} | {v.get('source', '')} |")
    return "\n".join(lines) + "\n"


def rules_html(table: RuleTable | None = None) -> str:
    """The rules table as an HTML fragment (``<table class="kyphosim-rules">``)."""
    t = table or default_rules()
    rows = "".join(
        f"<tr><td><code>{html.escape(r.id)}</code></td><td>{_VERDICT_LABEL[r.verdict]}</td>"
        f"<td><code>{html.escape(r.when)}</code></td><td>{html.escape(r.reason)}</td>"
        f"<td>{html.escape(r.source)}</td></tr>" for r in t.rules)
    return ("<table class=\"kyphosim-rules\"><thead><tr><th>id</th><th>verdict</th><th>condition</th>"
            f"<th>reason</th><th>source</th></tr></thead><tbody>{rows}</tbody></table>")
