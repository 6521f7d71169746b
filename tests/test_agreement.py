"""Agreement math against values worked out by hand (in the comments) and a published example."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from rlhf.store.agreement import kendall_tau_b, krippendorff_alpha, pairwise_agreement, summarize, tiers_to_ranks


def test_tiers_to_ranks():
    # C > B = D > A: A in tier 3, B and D in tier 2, C in tier 1
    assert tiers_to_ranks([[2], [1, 3], [0]]) == [3, 2, 1, 2]


def test_pairwise_agreement_counts_ties_as_an_answer():
    # a = [1,2,2,3], b = [1,1,2,3]; pairs (0,1) a:< b:=  (0,2) <,<  (0,3) <,<  (1,2) =,<  (1,3) <,<  (2,3) <,<
    # same on 4 of 6
    assert pairwise_agreement([1, 2, 2, 3], [1, 1, 2, 3]) == pytest.approx(4 / 6)
    assert pairwise_agreement([1, 2, 3], [3, 2, 1]) == 0.0
    assert pairwise_agreement([1, 1, 1], [1, 1, 1]) == 1.0


def test_kendall_tau_b_by_hand():
    # same pairs as above: concordant (0,2) (0,3) (1,3) (2,3) = 4, discordant 0, n0 = 6,
    # ties in a: (1,2) = 1, ties in b: (0,1) = 1 -> 4 / sqrt(5 * 5) = 0.8
    assert kendall_tau_b([1, 2, 2, 3], [1, 1, 2, 3]) == pytest.approx(0.8)
    # a = [1,1,2], b = [2,1,1]: (0,1) tie in a; (0,2) a:< b:> discordant; (1,2) tie in b
    # -> (0 - 1) / sqrt((3 - 1) * (3 - 1)) = -0.5
    assert kendall_tau_b([1, 1, 2], [2, 1, 1]) == pytest.approx(-0.5)
    assert kendall_tau_b([1, 2, 3, 4], [1, 2, 3, 4]) == 1.0
    assert kendall_tau_b([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert kendall_tau_b([1, 1, 1], [1, 2, 3]) is None  # one labeler tied everything: undefined


def test_kendall_tau_b_matches_a_matrix_form_reference():
    # tau_b = sum_ij s_a s_b / sqrt(sum_ij s_a^2 * sum_ij s_b^2), s = sign of rank differences
    rng = random.Random(0)
    for _ in range(200):
        k = rng.randint(2, 9)
        a, b = np.array([rng.randint(1, 3) for _ in range(k)]), np.array([rng.randint(1, 4) for _ in range(k)])
        sa, sb = np.sign(a[:, None] - a[None, :]), np.sign(b[:, None] - b[None, :])
        denom = math.sqrt((sa**2).sum() * (sb**2).sum())
        want = (sa * sb).sum() / denom if denom else None
        got = kendall_tau_b(a.tolist(), b.tolist())
        assert (got is None and want is None) or got == pytest.approx(want)


def test_krippendorff_alpha_two_values_by_hand():
    # units (1,1) (1,2) (2,2): coincidences o11 = 2, o12 = o21 = 1, o22 = 2; n1 = n2 = 3, n = 6.
    # With two values every metric gives the same alpha (the distance is a constant):
    # nominal: 1 - (n - 1) * (o12 + o21) / (n1 n2 + n2 n1) = 1 - 5 * 2 / 18 = 4/9
    for metric in ("nominal", "ordinal", "interval"):
        assert krippendorff_alpha([[1, 1], [1, 2], [2, 2]], metric) == pytest.approx(4 / 9)


def test_krippendorff_alpha_three_values_by_hand():
    # units (1,1) (2,3) (3,3): o11 = 2, o23 = o32 = 1, o33 = 2; n1 = 2, n2 = 1, n3 = 3, n = 6.
    units = [[1, 1], [2, 3], [3, 3]]
    # interval d2 = (c - k)^2: observed 2 * 1 = 2; expected 2 (n1 n2 * 1 + n1 n3 * 4 + n2 n3 * 1) = 2 * 29 = 58
    # alpha = 1 - 5 * 2 / 58 = 48/58
    assert krippendorff_alpha(units, "interval") == pytest.approx(48 / 58)
    # ordinal d2_ck = (sum_{g=c..k} n_g - (n_c + n_k) / 2)^2: d12 = (3 - 1.5)^2 = 2.25, d23 = (4 - 2)^2 = 4,
    # d13 = (6 - 2.5)^2 = 12.25; observed 2 * 4 = 8; expected 2 (2 * 2.25 + 6 * 12.25 + 3 * 4) = 180
    # alpha = 1 - 5 * 8 / 180 = 7/9
    assert krippendorff_alpha(units, "ordinal") == pytest.approx(7 / 9)
    # nominal: observed 2; expected 2 (2 + 6 + 3) = 22; alpha = 1 - 10/22 = 6/11
    assert krippendorff_alpha(units, "nominal") == pytest.approx(6 / 11)


def test_krippendorff_alpha_published_example():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": 4 observers, 12 units,
    # "." missing; the paper reports nominal .743, ordinal .815, interval .849.
    observers = ["1 2 3 3 2 1 4 1 2 . . .", "1 2 3 3 2 2 4 1 2 5 . 3",
                 ". 3 3 3 2 3 4 2 2 5 1 .", "1 2 3 3 2 4 4 1 2 5 1 ."]
    units = [[int(v) for v in column if v != "."] for column in zip(*(o.split() for o in observers))]
    assert round(krippendorff_alpha(units, "nominal"), 3) == 0.743
    assert round(krippendorff_alpha(units, "ordinal"), 3) == 0.815
    assert round(krippendorff_alpha(units, "interval"), 3) == 0.849


def test_krippendorff_alpha_edges():
    # units (1,2) (1,2): o12 = o21 = 2, n1 = n2 = 2, n = 4 -> 1 - 3 * 4 / (2 * 2 * 2) = -0.5, worse than chance
    assert krippendorff_alpha([[1, 2], [1, 2]], "nominal") == pytest.approx(-0.5)
    assert krippendorff_alpha([[2, 2], [2, 2]]) is None  # no variation: undefined
    assert krippendorff_alpha([[1], [2, 2], [3, 3]]) == 1.0  # a lone value is not pairable and is dropped
    with pytest.raises(ValueError, match="metric"):
        krippendorff_alpha([[1, 2]], "ratio-ish")


def test_summarize_by_hand():
    # item X: alice A > B > C = ranks [1,2,3]; bob A > B = C = ranks [1,2,2]. Item Y has one label: left out.
    # pairwise: (A,B) <,<  (A,C) <,<  (B,C) <,=  -> 2/3
    # tau-b: concordant 2, discordant 0, ties 0 and 1 of n0 = 3 -> 2 / sqrt(3 * 2) = 0.8165
    # alpha (ordinal), units A:(1,1) B:(2,2) C:(3,2): o11 = 2, o22 = 2, o23 = o32 = 1; n1 = 2, n2 = 3, n3 = 1;
    # d12 = (5 - 2.5)^2 = 6.25, d23 = (4 - 2)^2 = 4, d13 = (6 - 1.5)^2 = 20.25;
    # observed 8, expected 2 (6 * 6.25 + 2 * 20.25 + 3 * 4) = 180 -> 1 - 5 * 8 / 180 = 7/9
    got = summarize({"X": {"alice": [[0], [1], [2]], "bob": [[0], [1, 2]]}, "Y": {"alice": [[1], [0]]}})
    assert (got["items"], got["comparisons"]) == (1, 1)
    assert got["pairwise_agreement"] == pytest.approx(2 / 3)
    assert got["kendall_tau_b"] == pytest.approx(2 / math.sqrt(6))
    assert got["krippendorff_alpha"] == pytest.approx(7 / 9)
    assert got["per_labeler"]["bob"] == {"comparisons": 1, "pairwise_agreement": pytest.approx(2 / 3),
                                         "kendall_tau_b": pytest.approx(2 / math.sqrt(6))}


def test_summarize_with_three_labelers_pools_pairs():
    # one item, K = 3; alice = bob = [1,2,3], carol = [3,2,1]
    # labeler pairs: alice-bob agree 3/3, alice-carol 0/3, bob-carol 0/3 -> pooled 3/9
    # tau-b: 1, -1, -1 -> mean -1/3; carol's own: 0 agreement, tau -1
    got = summarize({"X": {"alice": [[0], [1], [2]], "bob": [[0], [1], [2]], "carol": [[2], [1], [0]]}})
    assert got["comparisons"] == 3
    assert got["pairwise_agreement"] == pytest.approx(1 / 3)
    assert got["kendall_tau_b"] == pytest.approx(-1 / 3)
    assert got["per_labeler"]["carol"]["pairwise_agreement"] == 0.0
    assert got["per_labeler"]["carol"]["kendall_tau_b"] == -1.0


def test_summarize_with_nothing_to_compare():
    got = summarize({"X": {"alice": [[0], [1]]}})
    assert got == {"items": 0, "comparisons": 0, "pairwise_agreement": None, "kendall_tau_b": None,
                   "krippendorff_alpha": None, "per_labeler": {}}
