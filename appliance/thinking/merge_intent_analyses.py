"""Merge sampled intent analyses into one intent model whose confidences are measured agreement (pure)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from appliance.thinking.intent_types import (
    Ambiguity,
    Entity,
    IntentAnalysis,
    IntentModel,
    Relation,
    TermMapping,
    Weighted,
)
from appliance.thinking.list_content_words import list_content_words

# Two phrases agree when two in five of their words are shared (Jaccard): "remove insects from a house" and
# "get rid of insects in the house" agree, "fix an error in a program" does not.
_SAME = 0.4


def _agree(a: frozenset[str], b: frozenset[str]) -> bool:
    if not a or not b:
        return a == b
    return len(a & b) / len(a | b) >= _SAME or a <= b or b <= a


def _cluster(items: Sequence[tuple[int, str]]) -> list[list[tuple[int, str]]]:
    """Group (analysis, text) items whose texts agree, in order of first appearance."""
    clusters: list[tuple[frozenset[str], list[tuple[int, str]]]] = []
    for index, text in items:
        words = list_content_words(text)
        for key, members in clusters:
            if _agree(key, words):
                members.append((index, text))
                break
        else:
            clusters.append((words, [(index, text)]))
    return [members for _, members in clusters]


def _share(members: list[tuple[int, str]], total: int) -> float:
    return len({index for index, _ in members}) / total if total else 0.0


def _name(members: list[tuple[int, str]]) -> str:
    # The wording most analyses used; the earliest among equals.
    counts = Counter(text for _, text in members)
    return max(counts, key=lambda text: (counts[text], -[t for _, t in members].index(text)))


def _weigh(items: Sequence[tuple[int, str]], total: int) -> tuple[Weighted, ...]:
    weighed = [Weighted(_name(members), _share(members, total)) for members in _cluster(items)]
    return tuple(sorted(weighed, key=lambda w: -w.confidence))  # sorted() is stable: first seen first


def _pairs(analyses: Sequence[IntentAnalysis], field: Callable[[IntentAnalysis], Sequence[str]]):
    return [(index, text) for index, analysis in enumerate(analyses) for text in field(analysis)]


def _merge_keyed(per_analysis: Sequence[Sequence[tuple[str, str]]], total: int) -> list[tuple[str, str, float]]:
    """(key, value) records, one list per analysis, merged by key: the value most analyses gave for the key,
    and the share of analyses that gave it."""
    records = [(index, key, value) for index, pairs in enumerate(per_analysis) for key, value in pairs]
    merged = []
    for members in _cluster([(index, key) for index, key, _ in records]):
        keys = set(members)
        values = [(index, value) for index, key, value in records if (index, key) in keys]
        best = max(_cluster(values), key=lambda group: _share(group, total))
        merged.append((_name(members), _name(best), _share(best, total)))
    return sorted(merged, key=lambda record: -record[2])


def _merge_relations(analyses: Sequence[IntentAnalysis], total: int) -> tuple[Relation, ...]:
    # A relation is keyed by its two ends; the analyses vote on what joins them.
    ends = {f"{source} -> {target}": (source, target) for a in analyses for source, _, target in a.relations}
    keyed = [[(f"{source} -> {target}", relation) for source, relation, target in a.relations] for a in analyses]
    merged = _merge_keyed(keyed, total)
    return tuple(Relation(ends[key][0], relation, ends[key][1], share) for key, relation, share in merged)


def _merge_ambiguities(analyses: Sequence[IntentAnalysis], total: int) -> list[Ambiguity]:
    aspects = [(index, aspect) for index, analysis in enumerate(analyses) for aspect, _ in analysis.ambiguities]
    found = []
    for members in _cluster(aspects):
        seen = {(index, aspect) for index, aspect in members}
        readings = [
            (index, reading)
            for index, analysis in enumerate(analyses)
            for aspect, options in analysis.ambiguities
            if (index, aspect) in seen
            for reading in options
        ]
        flagged = len({index for index, _ in members})
        found.append(Ambiguity(_name(members), _weigh(readings, flagged), flagged / total))
    return found


def merge_intent_analyses(analyses: Sequence[IntentAnalysis]) -> IntentModel | None:
    """One intent model from analyses of the same prompt (None when there are none).

    An aspect's confidence is the share of analyses that agree on it (wording aside: phrases agree when
    they share two in five of their words, or one holds all the other's). Analyses that disagree on the
    goal make the goal an ambiguity, its confidence the share that left the most agreed goal.
    """
    total = len(analyses)
    if total == 0:
        return None
    goals = _weigh([(index, analysis.goal) for index, analysis in enumerate(analyses)], total)
    ambiguities = _merge_ambiguities(analyses, total)
    if len(goals) > 1:
        ambiguities.insert(0, Ambiguity("goal", goals, 1.0 - goals[0].confidence))
    terms = _merge_keyed([analysis.terms for analysis in analyses], total)
    entities = _merge_keyed([analysis.entities for analysis in analyses], total)
    return IntentModel(
        goal=goals[0],
        constraints=_weigh(_pairs(analyses, lambda a: a.constraints), total),
        needs=_weigh(_pairs(analyses, lambda a: a.needs), total),
        components=_weigh(_pairs(analyses, lambda a: a.components), total),
        terms=tuple(TermMapping(term, concept, share) for term, concept, share in terms),
        entities=tuple(Entity(name, kind, share) for name, kind, share in entities),
        relations=_merge_relations(analyses, total),
        ambiguities=tuple(sorted(ambiguities, key=lambda a: -a.confidence)),
        analyses=total,
    )
