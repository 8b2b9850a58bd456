"""Search: one query model (`query`), one parser of its text forms, one rule for the words
of free text (`words`), one translator per engine (in the engines' modules under
epipe/index/)."""
