"""The product's ranking: one score for the whole run, ties within the validation noise."""

from __future__ import annotations

from hwcompress.search.candidate import Candidate, Status
from hwcompress.search.fidelity import TOP_FIDELITY
from hwcompress.search.product import ProductScore, rank

TEACHER = {"params": 100_000.0}


def _cand(cid: str, params: float, val: float, fidelity: int = TOP_FIDELITY) -> Candidate:
    return Candidate(
        id=cid,
        stage="shrinkage",
        episode=0,
        method="n2n",
        genome={},
        status=Status.OK,
        metrics={"val_accuracy": val, "params": params},
        feasible=True,
        fidelity=fidelity,
    )


def test_within_one_standard_error_the_smaller_student_wins():
    # digits' validation split: 143 images; one miss is within the noise, two are not
    cands = [
        _cand("big", 6_000, 1.0),  # 16x, every image right
        _cand("small", 3_000, 142 / 143),  # 33x, one image wrong
        _cand("smaller", 2_000, 141 / 143),  # 50x, two wrong
        _cand("proxy", 1_000, 142 / 143, fidelity=1),  # not trained to the top fidelity
    ]
    score = ProductScore(TEACHER, 1.0, "params", "n2n", val_samples=143)
    floor, best = score.tie(cands)
    assert best == 1.0 and 141 / 143 < floor < 142 / 143
    assert [c.id for c in rank(cands, score)][:2] == ["small", "big"]
    assert "one standard error" in score.describe()
    # without the split's size, or with a target (accuracy alone ranks), no ties
    plain = ProductScore(TEACHER, 1.0, "params", "n2n")
    assert plain.tie(cands) is None and rank(cands, plain)[0].id == "big"
    target = ProductScore(TEACHER, 1.0, "params", "accuracy", val_samples=143)
    assert target.tie(cands) is None and rank(cands, target)[0].id == "big"


def test_a_large_split_ties_only_what_it_cannot_tell_apart():
    cands = [_cand("a", 20_000, 0.9200), _cand("b", 10_000, 0.9180), _cand("c", 5_000, 0.9100)]
    score = ProductScore(TEACHER, 0.93, "params", "n2n", val_samples=6_000)
    floor, _ = score.tie(cands)
    assert 0.9160 < floor < 0.9170  # 0.35 points under 92 % on 6,000 images
    assert rank(cands, score)[0].id == "b"
