"""Clinical knowledge as data: ``rules/``, ``terminology/``, ``questionnaires/``.

Loaded and cross-checked once at start-up; any mistake stops start-up with an
error naming the file and the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from service.engine import RuleSet
from service.fhir import Vocabulary, validate_resource
from service.knowledge.questionnaires import KnowledgeError, QuestionnaireLibrary
from service.knowledge.rule_files import load_ruleset
from service.knowledge.rule_schema import RuleFileError
from service.knowledge.terminology import Terminology, TerminologyError


@dataclass(frozen=True)
class Knowledge:
    ruleset: RuleSet
    library: QuestionnaireLibrary
    terminology: Terminology
    vocabulary: Vocabulary

    @classmethod
    def load(cls, rules_dir: Path, questionnaires_dir: Path, terminology_dir: Path) -> Knowledge:
        """Validate everything; raises ValueError (RuleFileError, InvalidResource, ...)."""
        terminology = Terminology.load(terminology_dir, validate=validate_resource)
        vocabulary = terminology.vocabulary()
        library = QuestionnaireLibrary.load(questionnaires_dir, vocabulary, terminology)
        ruleset = load_ruleset(rules_dir, terminology, validate_resource=validate_resource)
        return cls(ruleset, library, terminology, vocabulary)


__all__ = [
    "Knowledge",
    "KnowledgeError",
    "QuestionnaireLibrary",
    "RuleFileError",
    "Terminology",
    "TerminologyError",
]
