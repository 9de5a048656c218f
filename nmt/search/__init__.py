"""Search for translations, and the one scorer that ranks them."""

from nmt.search.beam import beam_search
from nmt.search.greedy import greedy_search
from nmt.search.result import SearchResult
from nmt.search.scoring import Scorer

__all__ = ["Scorer", "SearchResult", "beam_search", "greedy_search"]
