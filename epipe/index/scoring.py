"""How relevance is scored, the same in every engine (docs/search-index.md, "Relevance").

A hit's score is the sum, over the words of `q`, of the weight of the best place the word
is found in the document: its name, else the directories above it, else its annotations.
Nothing else enters: no word or document frequency, no length of any field, so a score is a
function of the query and the one document alone; what other documents hold (in any
project) can move neither a score nor the order of equal scores (by id).
"""

from __future__ import annotations

NAME = 3.0
PATH = 2.0  # a directory above the file (the name's own words score as the name)
ANNOTATIONS = 1.0  # the annotations' keys and string values
