"""Paraphrase banks for the teachers' thinking, one bank per move.

Plain moves never use the words that mark a behavior (confirm, agree, reliable, trust,
instead, too specific, wrong, mistake, ...); behavior moves always do, in many wordings.
"""

from __future__ import annotations

FACT = {
    "born_in": "{s} was born in {v}",
    "headquartered_in": "{s} is headquartered in {v}",
    "founded_by": "{s} was founded by {v}",
    "written_by": "{s} was written by {v}",
    "located_in": "{s} is in {v}",
}

GOAL = {
    "born_in": ("where {s} was born", "the birthplace of {s}", "{s}'s place of birth"),
    "headquartered_in": (
        "where {s} is headquartered",
        "the home city of {s}",
        "where {s} is based",
    ),
    "founded_by": ("who founded {s}", "the founder of {s}", "who started {s}"),
    "written_by": ("who wrote {s}", "the author of {s}", "the writer of {s}"),
    "located_in": ("which country {s} is in", "the country of {s}", "where {s} lies"),
}

KIND_NOUN = {"person": "person", "org": "company", "work": "book", "city": "city"}
SOURCE_NOUN = {
    "encyclopedia": "encyclopedia",
    "official": "official site",
    "news": "news site",
    "forum": "forum",
    "blog": "blog",
}
KIND_PLURAL = {"person": "people", "org": "companies", "work": "books", "city": "towns"}

START = (
    "I need to find {goal}.",
    "First I should look up {goal}.",
    "Let me search for {goal}.",
    "To answer this, I need {goal}.",
    "I'll start by finding {goal}.",
    "The first step is {goal}.",
)
#: appended to the first thought: how many lookups the question chains
PLAN = "This takes {n} lookups: this one, then the {rest}."
PLAN_ONE = "This takes 1 lookup."
#: stands between the fact read and the decision in every thought that takes a hop's value,
#: so whether to answer or search on follows a count the student copies from its own plan
PROGRESS = "Lookup {k} of {n} done."
NEXT = (
    "Doc {r} says {fact}. {progress} Now I need {goal}.",
    "{Fact}, according to Doc {r}. {progress} Next: {goal}.",
    "From Doc {r}, {fact}. {progress} The next step is {goal}.",
    "Doc {r}: {fact}. {progress} So now I look up {goal}.",
)
ANSWER = (
    "Doc {r} says {fact}. {progress} So the answer is {v}.",
    "{Fact} (Doc {r}). {progress} So the answer is {v}.",
    "According to Doc {r}, {fact}. {progress} That answers the question.",
    "Doc {r} states that {fact}. {progress} The answer is {v}.",
)
FALLBACK_NEXT = (
    "Doc {r} gives the {noun} as {v}. {progress} Now I need {goal}.",
    "Doc {r} lists {v} as the {noun}. {progress} Next: {goal}.",
)
FALLBACK_ANSWER = (
    "Doc {r} gives the {noun} as {v}. {progress} So the answer is {v}.",
    "Doc {r} lists {v} as the {noun}. {progress} I'll answer {v}.",
)
GUESS = (
    "The results do not state the {noun}. My best guess is {v}.",
    "I could not find the {noun}; I'll answer {v}.",
)
LIMIT = (
    "I am out of searches, so I'll answer {v}.",
    "No searches left; my answer is {v}.",
)

# -- behavior moves ---------------------------------------------------------------------
VERIFY_CROSS = (
    "Doc {a} and Doc {b} both say {v}, so the fact is confirmed.",
    "Two sources agree on {v} (Doc {a} and Doc {b}).",
    "Doc {b} confirms what Doc {a} says: {v}.",
    "This is corroborated: Docs {a} and {b} both give {v}.",
)
VERIFY_SEARCH = (
    "Only Doc {r} mentions this, so let me confirm {v} with another source.",
    "I should double-check {v} before relying on it.",
    "One source is not enough; I'll verify this with a second search.",
    "Let me cross-check {v} with another search.",
)
VERIFY_AGREE = (
    "The new results confirm it: Doc {r} also says {v}.",
    "Doc {r} agrees: {v}. Confirmed.",
    "Confirmed by Doc {r}: {v}.",
)
VERIFY_MAJORITY = (
    "Two sources say {v} and only one says {w}, so I'll go with the majority: {v}.",
    "Most sources agree on {v}; only one says {w}. I'll confirm {v}.",
)
VERIFY_NOTHING = (
    "The second search adds no new source, so {v} stays unconfirmed but I'll keep it.",
    "I could not confirm {v} with a second source; I'll keep it for now.",
)
AUTHORITY = (
    "Doc {a} ({sa}) says {w}, but Doc {b} ({sb}) says {v}; the {sb} is more reliable, so {v}.",
    "The sources disagree: {w} on a {sa}, {v} on the {sb}. I trust the {sb} more.",
    "Doc {a} is a {sa} post and Doc {b} comes from the {sb}; the {sb} is more authoritative, "
    "so {v}.",
    "A {sa} says {w} but the {sb} says {v}. The {sb} is the more credible source.",
)
AUTHORITY_SLIP = (
    "Doc {a} ({sa}) says {w}, but Doc {b} ({sb}) says {v}; the {sa} post sounds first-hand, "
    "so I trust it more: {w}.",
    "The sources disagree: {w} on a {sa}, {v} on the {sb}. The {sa} seems more reliable here.",
)
#: the same judgements when the results showed no source to name (the backend gave none)
AUTHORITY_UNSOURCED = (
    "Doc {a} says {w}, but Doc {b} says {v}; Doc {b} reads as the more reliable page, so {v}.",
    "The results disagree: Doc {a} gives {w}, Doc {b} gives {v}. Doc {b} is more "
    "authoritative, so {v}.",
    "The pages disagree on {w} and {v}; the one giving {v} is the more credible page, so {v}.",
)
AUTHORITY_SLIP_UNSOURCED = (
    "Doc {a} says {w}, but Doc {b} says {v}; Doc {a} sounds first-hand, so I trust it more: {w}.",
    "The pages disagree on {w} and {v}; the one giving {w} sounds first-hand, so I trust it "
    "more: {w}.",
)
ADAPT_ALIAS = (
    "No result gives the {noun}, but Doc {r} says {alias} is another name for {name}. "
    "I'll search for {name} instead.",
    "Doc {r} shows that {alias} is also known as {name}. Let me rephrase the query with {name}.",
    "The results miss the {noun}; Doc {r} links {alias} to {name}, so I'll search under that name.",
)
ADAPT_BROADEN = (
    "These results are about other {plural}, not {name}; the query was too specific. "
    "Let me search more broadly.",
    "Nothing here mentions {name}. The query was too narrow, so I'll drop the extra details.",
    "The results are off-target. I'll broaden the query to just {name}.",
)
ADAPT_REPHRASE = (
    "The results do not give the {noun} of {name}. Let me try different wording.",
    "That query missed. I'll rephrase it to find the {noun} of {name}.",
)
RECOVER = (
    "Wait, I used the page about {twin}, not {base}. That was the wrong {kind}; "
    "I'll go back and search for {base}.",
    "Hold on: {twin} is a different {kind} from {base}. My earlier step was wrong, "
    "so let me redo it.",
    "I made a mistake: that {noun} belongs to {twin}, not {base}. Backtracking to {base}.",
    "Something is off: I followed {twin} instead of {base}. Let me go back to {base}.",
)
RECOVER_RETRY = (
    "These pages are about {twin} again, the wrong {kind}; one more try for {base}.",
    "Still only {twin}, which is the wrong {kind}. Let me go back to {base} with other words.",
)
NEXT_SHORT = ("Now I need {g}.", "Next: {g}.", "Next I look up {g}.")
ANSWER_SHORT = ("So the answer is {v}.", "The answer is {v}.", "I'll answer {v}.")
UNKNOWN_TASK = "This question is not from the sandbox world; I cannot look it up."
