"""The Ray Tune trainable and the search driver: OptunaSearch over the pipeline, resume, status."""

from prunetune.search.driver import SearchOutcome, resume_search, run_search, search_status

__all__ = ["SearchOutcome", "resume_search", "run_search", "search_status"]
