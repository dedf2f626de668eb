"""The Ray Tune trainable and the search driver: OptunaSearch over the pipeline, resume, status."""

from prunetune.search.driver import SearchOutcome, resume_search, run_search, search_status
from prunetune.search.objectives import OBJECTIVES, objective_metrics

__all__ = ["OBJECTIVES", "SearchOutcome", "objective_metrics", "resume_search", "run_search", "search_status"]
