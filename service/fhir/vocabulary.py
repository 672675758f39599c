"""What reading answers needs to know of the terminology, as plain look-up tables.

Built by ``service.knowledge`` from ``terminology/``; the FHIR adapter only reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

Coding = tuple[str, str]


@dataclass(frozen=True)
class Vocabulary:
    #: the local CodeSystem url
    local_system: str
    #: question concept -> answer type (yes-no-unknown | choice | ordered-choice | integer | ...)
    answer_types: Mapping[str, str]
    #: answer code -> its question concept
    answer_of: Mapping[str, str]
    #: answer code -> rank (higher is more alarming for ordered choices)
    ranks: Mapping[str, int]
    displays: Mapping[str, str]
    definitions: Mapping[str, str]
    #: (system, code) of a standard code -> the local question concept it stands for
    by_standard: Mapping[Coding, str]
    #: (system, code) answer codings meaning Yes / No / Unknown
    yes_codes: frozenset[Coding]
    no_codes: frozenset[Coding]
    unknown_codes: frozenset[Coding]

    def concept_of_item_code(self, system: str | None, code: str | None) -> str | None:
        if system == self.local_system and code in self.answer_types:
            return code
        if system and code:
            return self.by_standard.get((system, code))
        return None
