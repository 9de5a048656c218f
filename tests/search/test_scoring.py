"""The scorer's length penalties, with T counting EOS."""

import pytest
import torch

from nmt.config import DecodeConfig
from nmt.config_checks import validate_decode
from nmt.errors import ConfigError
from nmt.search import Scorer

LOGP = torch.tensor([-4.0, -6.0])
LEN = torch.tensor([2, 4])


def test_no_penalty_is_raw_log_prob():
    torch.testing.assert_close(Scorer().objective(LOGP, LEN), LOGP)


def test_norm_divides_by_length_to_the_alpha():
    got = Scorer("norm", alpha=1.0).objective(LOGP, LEN)
    torch.testing.assert_close(got, torch.tensor([-2.0, -1.5]))
    torch.testing.assert_close(Scorer("norm", alpha=0.0).objective(LOGP, LEN), LOGP)


def test_gnmt_penalty_and_word_reward():
    got = Scorer("gnmt", alpha=1.0, word_reward=0.5).objective(LOGP, LEN)
    expected = LOGP / ((5 + LEN.float()) / 6) + 0.5 * LEN.float()
    torch.testing.assert_close(got, expected)


def test_unknown_penalty_and_negative_alpha_are_refused():
    # at the config boundary, where a scorer's settings come from (the Scorer trusts them)
    with pytest.raises(ConfigError, match="length_penalty"):
        validate_decode(DecodeConfig(length_penalty="cubic"))
    with pytest.raises(ConfigError, match="alpha"):
        validate_decode(DecodeConfig(length_penalty="norm", alpha=-1.0))


@pytest.mark.parametrize(
    "scorer",
    [
        Scorer("none"),
        Scorer("norm", alpha=1.0),
        Scorer("gnmt", alpha=0.6),
        Scorer("none", word_reward=0.7),
        Scorer("norm", alpha=0.5, word_reward=-0.4),
    ],
)
def test_bound_is_never_beaten_by_an_extension_and_is_reached(scorer):
    torch.manual_seed(0)
    prefix = -torch.rand(200) * 5  # log P of prefixes of length 3
    shortest, longest = torch.full((200,), 4), torch.full((200,), 9)
    bound = scorer.bound(prefix, shortest, longest)
    for extra in range(1, 7):  # complete with `extra` more tokens (EOS included)
        more = -torch.rand(200, extra).pow(3).sum(1)  # log-probs only fall
        final = scorer.objective(prefix + more, torch.full((200,), 3 + extra))
        assert torch.all(final <= bound + 1e-6)
    # with log-probs of 0 for the rest, some length reaches the bound exactly
    reached = torch.stack([scorer.objective(prefix, torch.full((200,), n)) for n in range(4, 10)])
    torch.testing.assert_close(reached.amax(0), bound)
    # outside [shortest, longest] nothing counts: a prefix that must end now is scored as is
    now = scorer.bound(prefix, torch.full((200,), 4), torch.full((200,), 4))
    torch.testing.assert_close(now, scorer.objective(prefix, torch.full((200,), 4)))
