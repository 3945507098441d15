from __future__ import annotations

import pytest

from hwcompress.hardware import ConstraintMatrix, load_profile
from hwcompress.search.reward import RewardConfig, compression_reward, penalty_weight, reward

TEACHER = {
    "params": 1000,
    "weight_bytes": 4000,
    "macs": 10_000,
    "peak_activation_bytes": 100,
    "latency_ms": 1.0,
    "unsupported_bits": 0,
}


@pytest.fixture
def matrix():
    return ConstraintMatrix.from_profile(load_profile("x86_host"))  # latency ≤ 10 ms


def test_compression_term_by_hand():
    # 10× smaller: C = 0.9, Rc = 0.9 · 1.1 = 0.99
    assert compression_reward(100, 1000) == pytest.approx(0.99)
    assert compression_reward(1000, 1000) == 0
    assert compression_reward(2000, 1000) == 0  # never negative
    assert compression_reward(0, 1000) == 1


def test_reward_is_compression_times_accuracy_ratio(matrix):
    student = {**TEACHER, "params": 100, "weight_bytes": 2000}
    r, ok = reward(student, TEACHER, 0.9, 1.0, matrix, RewardConfig())
    assert ok and r == pytest.approx(0.99 * 0.9)
    # size by weight bytes: C = 0.5, Rc = 0.75
    r, _ = reward(student, TEACHER, 0.9, 1.0, matrix, RewardConfig(size_metric="weight_bytes"))
    assert r == pytest.approx(0.75 * 0.9)


def test_hard_constraints_give_minus_one(matrix):
    slow = {**TEACHER, "params": 100, "latency_ms": 15.0}
    assert reward(slow, TEACHER, 0.9, 1.0, matrix, RewardConfig()) == (-1.0, False)


def test_soft_penalty_follows_its_schedule(matrix):
    cfg = RewardConfig(constraint_mode="soft", penalty_start=0.5, penalty_end=4.0)
    assert penalty_weight(cfg, 0, 5) == 0.5 and penalty_weight(cfg, 4, 5) == 4.0
    slow = {**TEACHER, "params": 100, "latency_ms": 12.0}  # 20% over the 10 ms budget
    early, ok = reward(slow, TEACHER, 1.0, 1.0, matrix, cfg, episode=0, episodes=5)
    late, _ = reward(slow, TEACHER, 1.0, 1.0, matrix, cfg, episode=4, episodes=5)
    assert not ok
    assert early == pytest.approx(0.99 - 0.5 * 0.2)
    assert late == pytest.approx(0.99 - 4.0 * 0.2)
    very_slow = {**slow, "latency_ms": 100.0}
    assert reward(very_slow, TEACHER, 1.0, 1.0, matrix, cfg, episode=4, episodes=5)[0] == -1


def test_accuracy_objective_ranks_feasible_students_by_accuracy_alone(matrix):
    from hwcompress.search.target import parse_target, with_targets

    m = with_targets(matrix, (parse_target("params=10x"),), TEACHER)  # params ≤ 100
    config = RewardConfig(objective="accuracy")
    small = {**TEACHER, "params": 50, "weight_bytes": 200}
    at_budget = {**TEACHER, "params": 100, "weight_bytes": 400}
    # any size within the target is as good as another: accuracy decides
    assert reward(small, TEACHER, 0.9, 1.0, m, config) == (pytest.approx(0.9), True)
    assert reward(at_budget, TEACHER, 0.95, 1.0, m, config) == (pytest.approx(0.95), True)
    # over the target: the paper's −1 (hard) or a penalty of the relative violation (soft)
    over = {**TEACHER, "params": 150, "weight_bytes": 600}
    assert reward(over, TEACHER, 0.99, 1.0, m, config) == (-1.0, False)
    soft = RewardConfig(objective="accuracy", constraint_mode="soft", penalty_start=2.0)
    r, ok = reward(over, TEACHER, 0.99, 1.0, m, soft, episode=0, episodes=3)
    assert not ok and r == pytest.approx(0.99 - 2.0 * 0.5)
    # the default objective still rewards compression
    assert reward(small, TEACHER, 0.9, 1.0, m, RewardConfig())[0] == pytest.approx(
        compression_reward(50, 1000) * 0.9
    )
