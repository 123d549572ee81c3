"""Indications: clinical input, the rules table, the per-level decision engine and SINS.

Research software, not a medical device: the decision is an explanation aid, never a prescription.
"""

from kyphosim.clinical.engine import DECISION_SCHEMA, FACTS, Decision, LevelDecision, decision_html, evaluate
from kyphosim.clinical.input import CLINICAL_SCHEMA, ClinicalInput, clinical_json_schema, load_clinical, parse_clinical
from kyphosim.clinical.rules import RuleTable, default_rules, load_rules, rules_html, rules_markdown
from kyphosim.clinical.sins import SinsScore, score_sins

__all__ = ["evaluate", "Decision", "LevelDecision", "decision_html", "FACTS", "DECISION_SCHEMA",
           "ClinicalInput", "CLINICAL_SCHEMA", "load_clinical", "parse_clinical", "clinical_json_schema",
           "RuleTable", "load_rules", "default_rules", "rules_markdown", "rules_html", "SinsScore", "score_sins"]
