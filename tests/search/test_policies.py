from __future__ import annotations

import torch

from hwcompress.arch import build_spec
from hwcompress.models import build_builtin
from hwcompress.search.features import FEATURE_DIM, group_features, unit_features
from hwcompress.search.policies import WIDTH_CHOICES, RemovalPolicy, ShrinkPolicy
from hwcompress.search.reinforce import Reinforce


def test_features_have_a_fixed_width_for_any_teacher():
    for name in ("vgg", "resnet"):
        spec = build_spec(build_builtin(name), (1, 1, 8, 8))
        assert unit_features(spec).shape == (len(spec.units), FEATURE_DIM)
        assert group_features(spec, spec.shrinkable).shape == (len(spec.shrinkable), FEATURE_DIM)


def test_sampling_is_seeded():
    torch.manual_seed(0)
    policy = ShrinkPolicy()
    x = torch.rand(5, FEATURE_DIM)
    a = policy.sample(x, torch.Generator().manual_seed(1)).actions
    b = policy.sample(x, torch.Generator().manual_seed(1)).actions
    assert a == b and len(a) == 5 and all(0 <= i < len(WIDTH_CHOICES) for i in a)


def test_reinforce_moves_the_policy_towards_rewarded_actions():
    torch.manual_seed(0)
    policy = RemovalPolicy()
    learner = Reinforce(policy, lr=0.05)
    x = torch.rand(4, FEATURE_DIM)
    gen = torch.Generator().manual_seed(0)
    before = policy.probs(x).detach().clone()
    for _ in range(30):
        samples = [policy.sample(x, gen) for _ in range(8)]
        # reward removing the first layer only
        rewards = [1.0 if s.actions[0] == 0 else 0.0 for s in samples]
        learner.update([s.log_prob for s in samples], rewards)
    after = policy.probs(x).detach()
    assert after[0] < before[0] - 0.3
    assert learner.baseline is not None


def test_imitation_starts_the_policy_around_a_demonstration_and_keeps_exploring():
    from hwcompress.search.methods import PolicyController
    from hwcompress.search.policies import demonstration_target

    torch.manual_seed(0)
    controller = PolicyController("shrinkage")
    x = torch.rand(6, FEATURE_DIM)
    shown = [2, 2, 3, 5, 9, 0]
    kl = controller.imitate([(x, shown)])
    assert kl < 0.1
    gen = torch.Generator().manual_seed(0)
    draws = torch.tensor([controller.sample(x, gen).actions for _ in range(200)])
    on = (draws == torch.tensor(shown)).float().mean(0)
    near = ((draws - torch.tensor(shown)).abs() <= 1).float().mean(0)
    # about half on it (uniform: a tenth), not all: it keeps exploring
    assert torch.all(on > 0.25) and torch.all(on < 0.7), on
    assert torch.all(near > 0.45), near
    target = demonstration_target(3, len(WIDTH_CHOICES))
    assert abs(float(target.sum()) - 1) < 1e-6 and int(target.argmax()) == 3
    assert target[2] == target[4] > target[0]
    # mostly one step away: a far jump in one layer can double the student's size
    assert abs(float(target[2:5].sum()) - 0.85) < 1e-6
    edge = demonstration_target(0, len(WIDTH_CHOICES))
    assert abs(float(edge.sum()) - 1) < 1e-6 and abs(float(edge[:2].sum()) - 0.85) < 1e-6
    # keep or remove: most of it on the demonstrated decision
    assert torch.allclose(demonstration_target(1, 2), torch.tensor([0.15, 0.85]))


def test_imitation_starts_the_removal_policy_with_few_departures_from_a_demonstration():
    from hwcompress.search.methods import PolicyController
    from hwcompress.search.policies import BINARY_SHARE

    torch.manual_seed(0)
    controller = PolicyController("removal")
    x = torch.rand(6, FEATURE_DIM)
    shown = [1, 1, 0, 1, 1, 1]
    assert controller.imitate([(x, shown)]) < 0.05
    p = controller.policy.probs(x).detach()
    on = torch.where(torch.tensor(shown) == 1, p, 1 - p)
    assert torch.allclose(on, torch.full((6,), BINARY_SHARE), atol=0.05), on
    gen = torch.Generator().manual_seed(0)
    draws = torch.tensor([controller.sample(x, gen).actions for _ in range(300)])
    departures = (draws != torch.tensor(shown)).sum(1).float().mean()
    # about one unit in six redrawn (random search: three)
    assert 0.5 < departures < 1.5, departures


def test_imitation_of_several_structures_starts_each_around_its_own_best_student():
    from hwcompress.search.methods import PolicyController

    torch.manual_seed(0)
    controller = PolicyController("shrinkage")
    full, shorter = torch.rand(6, FEATURE_DIM), torch.rand(4, FEATURE_DIM)
    demos = [(full, [2, 2, 3, 5, 9, 0]), (shorter, [7, 7, 1, 4])]
    assert controller.imitate(demos) < 0.2
    gen = torch.Generator().manual_seed(0)
    for x, shown in demos:
        draws = torch.tensor([controller.sample(x, gen).actions for _ in range(200)])
        on = (draws == torch.tensor(shown)).float().mean(0)
        assert torch.all(on > 0.25), on
