"""Search: one query model (`query`), one parser of its text forms, one translator per
engine (in the engines' modules under epipe/index/)."""
