"""The Ray Tune trainable and search driver (see the search issue)."""
