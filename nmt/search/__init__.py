"""Search for translations, the one scorer that ranks them, and the ensemble of several
models searched as one."""

from nmt.search.beam import beam_search
from nmt.search.greedy import greedy_search
from nmt.search.result import SearchResult
from nmt.search.scoring import Scorer

__all__ = ["Scorer", "SearchResult", "beam_search", "greedy_search"]
