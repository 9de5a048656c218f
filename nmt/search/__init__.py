"""Search for translations, and the one scorer that ranks them."""

from nmt.search.greedy import SearchResult, greedy_search
from nmt.search.scoring import Scorer

__all__ = ["Scorer", "SearchResult", "greedy_search"]
