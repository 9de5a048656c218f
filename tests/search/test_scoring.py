"""The scorer's length penalties, with T counting EOS."""

import pytest
import torch

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
    with pytest.raises(ConfigError, match="length_penalty"):
        Scorer("cubic")
    with pytest.raises(ConfigError, match="alpha"):
        Scorer("norm", alpha=-1.0)
