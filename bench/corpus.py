"""A corpus of compound-AI programs, written the way people write them.

Each program is a plain function ``fn(client, *args)`` that talks to an
OpenAI-compatible endpoint through ``client.chat.completions.create(...)`` (and,
for the retrieval programs, to a slow search index), with the control flow its
kind naturally has: loops over items, early exits, caches, ``try``/``except``
retries, helpers returning tuples, generator expressions.  Next to each one is
``pooled(pool, client, *args)``: the same program by hand on a
``ThreadPoolExecutor``, the practical best a developer would write (submit the
independent calls, gather them with ``.result()``).  Both return the same value.

The test server (``tests/openai_server.py``) answers free text such as
``"context answer risk ... (1a2b3c4d)"``, a pure function of the model and the
messages.  Where a real program would read a number, a label, a verdict or JSON
out of the model's answer, the small readers below (``score``, ``verdict``,
``label_of``, ``as_json``) derive one from that text, deterministically: they
stand for what the model would have said.

``CORPUS`` lists the programs with their arguments, the requests a run makes and
``depth``, the number of requests on the critical path: the ideal time is about
``depth`` request latencies.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

__all__ = ["CORPUS", "WIKI", "Program", "SearchIndex", "set_tool_latency"]

FAST = "gpt-4o-mini"
STRONG = "gpt-4o"


# -- what the model "said": readers of the test server's text ------------------------------
def _digest(text: str) -> int:
    """The number behind a completion (the server ends each with 8 hex digits)."""
    m = re.search(r"\(([0-9a-f]{8})\)\s*$", text)
    return int(m.group(1), 16) if m else int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def score(text: str, lo: int = 1, hi: int = 10) -> int:
    """A rating between ``lo`` and ``hi`` the model gave in ``text``."""
    return lo + _digest(text) % (hi - lo + 1)


def verdict(text: str) -> str:
    """A Tree-of-Thoughts value verdict: ``sure``, ``likely`` or ``impossible``."""
    return ("sure", "likely", "likely", "impossible", "impossible")[_digest(text) % 5]


_LABELS = {"risk": "urgent", "answer": "question", "detail": "bug", "signal": "feature",
           "method": "how-to", "claim": "billing", "trend": "feedback", "source": "account"}


def label_of(text: str) -> str:
    """The label a classifier answered, or ``ValueError`` when it answered none of them."""
    first = text.split()[0] if text.split() else ""
    if first not in _LABELS:
        raise ValueError(f"not a label: {text!r}")
    return _LABELS[first]


def as_json(text: str) -> str:
    """The JSON object a model asked for ``{"reasoning": ..., "answer": <int>}`` returned."""
    words = text.split()
    return json.dumps({"reasoning": " ".join(words[:-1]), "answer": _digest(text) % 4 + 10})


# -- a slow search index (a vector store, a web search API) --------------------------------
PASSAGES = tuple(
    f"[{i}] {topic}" for i, topic in enumerate([
        "The Treaty of Westphalia ended the Thirty Years' War in 1648.",
        "Tidal locking makes the Moon show one face to the Earth.",
        "Photosynthesis in C4 plants concentrates carbon dioxide in bundle-sheath cells.",
        "The Rhine flows from the Swiss Alps to the North Sea.",
        "Lithium iron phosphate cells trade energy density for cycle life.",
        "The first transatlantic telegraph cable was completed in 1858.",
        "Transformers replaced recurrence with attention over the whole sequence.",
        "Basalt forms when lava rich in magnesium and iron cools quickly.",
        "The Hanseatic League linked merchant towns around the Baltic.",
        "Monsoon winds reverse direction between summer and winter.",
        "Retrieval-augmented generation grounds answers in fetched documents.",
        "The Krebs cycle oxidizes acetyl-CoA to carbon dioxide.",
        "Reinforced concrete pairs steel's tension strength with concrete's compression strength.",
        "Ada Lovelace described an algorithm for Bernoulli numbers.",
        "Coral bleaching follows the loss of symbiotic algae under heat stress.",
        "The Silk Road carried paper-making westward from China.",
        "Quicksort partitions around a pivot and recurses on both sides.",
        "Glaciers carve U-shaped valleys as they advance.",
        "Inflation targeting became common among central banks in the 1990s.",
        "The Voyager probes carry golden records of sounds from Earth.",
        "Mycorrhizal fungi trade soil nutrients for plant sugars.",
        "Double-entry bookkeeping spread from Venetian merchants.",
        "Gradient clipping keeps exploding gradients from derailing training.",
        "The Danube passes through four capital cities.",
    ])
)


class SearchIndex:
    """A search backend with a round-trip latency; results are a pure function of the query."""

    def __init__(self, name: str, latency: float = 0.06) -> None:
        self.name = name
        self.latency = latency
        self._lock = threading.Lock()
        self.searches = 0

    def search(self, query: str, k: int = 3) -> list[str]:
        """The ``k`` passages that best match ``query``, best first."""
        time.sleep(self.latency)
        with self._lock:
            self.searches += 1
        seed = hashlib.sha256(f"{self.name}:{query}".encode()).digest()
        order = sorted(range(len(PASSAGES)), key=lambda i: (seed[i % len(seed)] ^ i * 37) % 251)
        return [PASSAGES[i] for i in order[:k]]

    def __repr__(self) -> str:
        return f"SearchIndex({self.name!r})"


WIKI = SearchIndex("wiki")


def set_tool_latency(seconds: float) -> float:
    """Make ``WIKI.search`` take ``seconds`` (as long as a completion); returns the old value."""
    old, WIKI.latency = WIKI.latency, seconds
    return old


# -- the shared helper most programs use ---------------------------------------------------
def ask(client, prompt: str, model: str = FAST, system: str | None = None, **params: Any) -> str:
    messages = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": prompt})
    resp = client.chat.completions.create(model=model, messages=messages, **params)
    return resp.choices[0].message.content


# =========================================================================================
# 1. Tree of Thoughts, breadth-first: propose k thoughts per state, value each (cached),
#    keep the best b states, for a few levels.
# =========================================================================================
VALUE_OF = {"sure": 20.0, "likely": 1.0, "impossible": 0.001}


def propose_thoughts(client, problem: str, state: str, k: int) -> list[str]:
    prompt = (f"Problem: {problem}\nSteps so far:\n{state or '(none)'}\n"
              f"Propose {k} possible next steps, one per line.")
    text = ask(client, prompt, temperature=0.7)
    return [f"{w} step" for w in text.split()[:k]]


def value_state(client, problem: str, state: str) -> float:
    prompt = (f"Problem: {problem}\nPartial solution:\n{state}\n"
              "Evaluate if this can reach a solution (sure/likely/impossible):")
    return VALUE_OF[verdict(ask(client, prompt, temperature=0.0))]


def tree_of_thoughts(client, problem, steps=3, k=4, breadth=2):
    frontier = [""]
    cache = {}
    for _ in range(steps):
        candidates = []
        for state in frontier:
            for thought in propose_thoughts(client, problem, state, k):
                candidates.append(state + thought + "\n")
        values = []
        for y in candidates:
            if y in cache:
                v = cache[y]
            else:
                v = cache[y] = value_state(client, problem, y)
            values.append(v)
        ranked = sorted(range(len(candidates)), key=lambda i: values[i], reverse=True)
        frontier = [candidates[i] for i in ranked[:breadth]]
    return frontier[0], cache


def tree_of_thoughts_pooled(pool, client, problem, steps=3, k=4, breadth=2):
    frontier = [""]
    cache = {}
    for _ in range(steps):
        proposals = [pool.submit(propose_thoughts, client, problem, s, k) for s in frontier]
        candidates = [s + t + "\n" for s, f in zip(frontier, proposals) for t in f.result()]
        todo = {}
        for y in candidates:
            if y not in cache and y not in todo:
                todo[y] = pool.submit(value_state, client, problem, y)
        for y, f in todo.items():
            cache[y] = f.result()
        values = [cache[y] for y in candidates]
        ranked = sorted(range(len(candidates)), key=lambda i: values[i], reverse=True)
        frontier = [candidates[i] for i in ranked[:breadth]]
    return frontier[0], cache


# =========================================================================================
# 2. Mixture of Agents: every layer asks several proposer models (some may decline),
#    an aggregator synthesizes their answers, and the next layer sees the synthesis.
# =========================================================================================
PROPOSERS = ["llama-3.1-70b-instruct", "qwen2.5-72b-instruct", "mixtral-8x22b-instruct",
             "gemma-2-27b-it", "dbrx-instruct"]
AGGREGATOR = "llama-3.1-405b-instruct"


def moa_propose(client, model, question, previous):
    messages = [{"role": "user", "content": question}]
    if previous is not None:
        messages.insert(0, {"role": "system", "content":
                            "Here is a synthesized answer from other assistants; improve on it:\n"
                            + previous})
    resp = client.chat.completions.create(model=model, messages=messages, temperature=0.7,
                                          max_tokens=512)
    text = resp.choices[0].message.content
    if not text or text.startswith(("caveat", "risk")):  # the model declined
        return None
    return text.strip()


def moa_aggregate(client, question, refs):
    system = ("You have been provided with a set of responses from various models to the "
              "latest user query. Synthesize them into a single, high-quality response.\n\n"
              + "\n".join(f"{i + 1}. {r}" for i, r in enumerate(refs)))
    resp = client.chat.completions.create(
        model=AGGREGATOR,
        messages=[{"role": "system", "content": system}, {"role": "user", "content": question}])
    return resp.choices[0].message.content


def mixture_of_agents(client, question, layers=3):
    answer = None
    used = []
    for _ in range(layers):
        refs = []
        for m in PROPOSERS:
            r = moa_propose(client, m, question, answer)
            if r is not None:
                refs.append(r)
        used.append(len(refs))
        answer = moa_aggregate(client, question, refs)
    return answer, used


def mixture_of_agents_pooled(pool, client, question, layers=3):
    answer = None
    used = []
    for _ in range(layers):
        futures = [pool.submit(moa_propose, client, m, question, answer) for m in PROPOSERS]
        refs = [r for r in (f.result() for f in futures) if r is not None]
        used.append(len(refs))
        answer = moa_aggregate(client, question, refs)
    return answer, used


# =========================================================================================
# 3. STORM-like article writing: perspectives, a question from each, an outline, one
#    section per heading (cleaned up by a fast pure helper), a lead paragraph.
# =========================================================================================
def clean(text: str) -> str:
    """Drop the trailing reference marker and stray whitespace; capitalize the first letter."""
    text = re.sub(r"\s*\([0-9a-f]{8}\)\s*$", "", text).strip()
    return text[:1].upper() + text[1:]


def storm(client, topic):
    reply = ask(client, f"List the kinds of editors who would write a Wikipedia article on {topic}.")
    perspectives = list(dict.fromkeys(reply.split()[:-1]))[:4]
    questions = []
    for p in perspectives:
        questions.append(ask(client, f"You are a {p} editor researching '{topic}'. "
                                     "What is the one question you would ask an expert?"))
    outline = ask(client, f"Write an outline for a Wikipedia article on {topic}, drawing on these "
                          "research questions:\n" + "\n".join(questions), model=STRONG)
    headings = list(dict.fromkeys(w.title() for w in outline.split()[:-1]))[:6]
    sections = []
    for h in headings:
        sections.append(clean(ask(client, f"Write the section '{h}' of the article on {topic}.\n"
                                          f"Outline:\n{outline}")))
    lead = clean(ask(client, f"Write a lead paragraph for an article on {topic} with sections: "
                             + ", ".join(headings), model=STRONG))
    body = "\n\n".join(f"## {h}\n{s}" for h, s in zip(headings, sections))
    return f"# {topic.title()}\n\n{lead}\n\n{body}"


def storm_pooled(pool, client, topic):
    reply = ask(client, f"List the kinds of editors who would write a Wikipedia article on {topic}.")
    perspectives = list(dict.fromkeys(reply.split()[:-1]))[:4]
    futures = [pool.submit(ask, client, f"You are a {p} editor researching '{topic}'. "
                                        "What is the one question you would ask an expert?")
               for p in perspectives]
    questions = [f.result() for f in futures]
    outline = ask(client, f"Write an outline for a Wikipedia article on {topic}, drawing on these "
                          "research questions:\n" + "\n".join(questions), model=STRONG)
    headings = list(dict.fromkeys(w.title() for w in outline.split()[:-1]))[:6]
    futures = [pool.submit(ask, client, f"Write the section '{h}' of the article on {topic}.\n"
                                        f"Outline:\n{outline}") for h in headings]
    lead = pool.submit(ask, client, f"Write a lead paragraph for an article on {topic} with "
                                    "sections: " + ", ".join(headings), model=STRONG)
    sections = [clean(f.result()) for f in futures]
    body = "\n\n".join(f"## {h}\n{s}" for h, s in zip(headings, sections))
    return f"# {topic.title()}\n\n{clean(lead.result())}\n\n{body}"


# =========================================================================================
# 4. Map-reduce summarization: summarize every chunk, collapse the partial summaries in
#    groups when they are too long together, then one final summary.
# =========================================================================================
REPORT = " ".join([
    "The city council met on Tuesday to review the flood defences along the river.",
    "Engineers reported that two of the five pumping stations need new motors.",
    "Residents of the lower districts asked for earlier warnings by text message.",
    "The budget committee proposed moving funds from road resurfacing to drainage.",
    "A local school offered its gym as an emergency shelter during storms.",
    "The mayor noted that insurance claims doubled compared with last year.",
    "Two councillors objected to raising the levy without a public consultation.",
    "The environmental officer presented a plan to restore the wetlands upstream.",
    "Restored wetlands could absorb a fifth of the peak flow in a heavy storm.",
    "Farmers upstream worry about losing grazing land to the wetland project.",
    "A compromise would lease the land rather than buy it outright.",
    "The harbour master warned that silt is building up near the old docks.",
    "Dredging the docks would cost less if combined with the wetland works.",
    "The transport department wants the river path closed during high water.",
    "Cyclists' groups asked for a signed detour instead of a full closure.",
    "The council agreed to publish flood maps for every street by spring.",
    "Volunteers will check storm drains each month and report blockages online.",
    "A pilot of river-level sensors will start in the two lowest districts.",
    "Sensor data will feed the text-message warnings residents asked for.",
    "The next meeting will vote on the levy and the wetland lease together.",
])


def split_chunks(text: str, n: int) -> list[str]:
    """``text`` cut into ``n`` runs of whole sentences of about the same length."""
    sentences = [s.strip() + "." for s in text.split(".") if s.strip()]
    bounds = [len(sentences) * i // n for i in range(n + 1)]
    return [" ".join(sentences[a:b]) for a, b in pairwise(bounds) if b > a]


MAX_COMBINED = 400  # characters the final summary's prompt may hold before collapsing


def map_reduce_summary(client, document, n_chunks=8):
    chunks = split_chunks(document, n_chunks)
    summaries = [ask(client, f"Summarize this passage in one sentence:\n{chunk}").strip()
                 for chunk in chunks]
    combined = "\n".join(summaries)
    if len(combined) > MAX_COMBINED:
        groups = [summaries[i:i + 4] for i in range(0, len(summaries), 4)]
        summaries = [ask(client, "Condense these notes into one:\n" + "\n".join(g)).strip()
                     for g in groups]
        combined = "\n".join(summaries)
    return ask(client, f"Write the final summary of these notes:\n{combined}", model=STRONG)


def map_reduce_summary_pooled(pool, client, document, n_chunks=8):
    chunks = split_chunks(document, n_chunks)
    futures = [pool.submit(ask, client, f"Summarize this passage in one sentence:\n{chunk}")
               for chunk in chunks]
    summaries = [f.result().strip() for f in futures]
    combined = "\n".join(summaries)
    if len(combined) > MAX_COMBINED:
        groups = [summaries[i:i + 4] for i in range(0, len(summaries), 4)]
        futures = [pool.submit(ask, client, "Condense these notes into one:\n" + "\n".join(g))
                   for g in groups]
        summaries = [f.result().strip() for f in futures]
        combined = "\n".join(summaries)
    return ask(client, f"Write the final summary of these notes:\n{combined}", model=STRONG)


# =========================================================================================
# 5. Digest of several reports: each report's paragraphs summarized inside a generator
#    expression, then one brief over all the digests.
# =========================================================================================
REPORTS = {
    "flood defences": REPORT[:len(REPORT) // 2],
    "wetland project": REPORT[len(REPORT) // 2:],
    "model release notes": (
        "The new checkpoint improves long-context recall on retrieval benchmarks. "
        "Latency at the median fell by a tenth after the kernel update. "
        "Tool-use accuracy rose on the internal agent suite. "
        "Refusals on benign medical questions dropped noticeably. "
        "A regression in Turkish tokenization is under investigation. "
        "The context window stays at the previous length for now. "
        "Batch pricing applies to the new checkpoint from next month. "
        "Fine-tuning support will follow in a later release."),
}


def paragraphs(text: str, n: int = 4) -> list[str]:
    return split_chunks(text, n)


def summarize(client, passage: str) -> str:
    resp = client.chat.completions.create(
        model=FAST, messages=[{"role": "system", "content": "You write terse bullet summaries."},
                              {"role": "user", "content": passage}])
    return "- " + resp.choices[0].message.content.strip()


def digest_reports(client, reports):
    digests = {}
    for title, text in reports.items():
        digests[title] = "\n".join(summarize(client, p) for p in paragraphs(text))
    brief = ask(client, "Write a one-paragraph brief for the board from these digests:\n\n"
                + "\n\n".join(f"{t}:\n{d}" for t, d in digests.items()), model=STRONG)
    return {"digests": digests, "brief": brief}


def digest_reports_pooled(pool, client, reports):
    futures = {title: [pool.submit(summarize, client, p) for p in paragraphs(text)]
               for title, text in reports.items()}
    digests = {title: "\n".join(f.result() for f in fs) for title, fs in futures.items()}
    brief = ask(client, "Write a one-paragraph brief for the board from these digests:\n\n"
                + "\n\n".join(f"{t}:\n{d}" for t, d in digests.items()), model=STRONG)
    return {"digests": digests, "brief": brief}


# =========================================================================================
# 6. ReAct: thought -> action -> observation, one step after the other, until Finish.
# =========================================================================================
REACT_SYSTEM = ("Solve a question answering task with interleaving Thought, Action, Observation "
                "steps. Action can be Search[entity], Lookup[keyword] or Finish[answer].")


def parse_action(thought: str, step: int) -> tuple[str, str]:
    words = thought.split()
    if words[0] == "answer" or (step >= 4 and "answer" in words[:4]):
        return "Finish", " ".join(words[1:4])
    if words[0] in ("detail", "method", "factor"):
        return "Lookup", words[1]
    return "Search", " ".join(words[:2])


def lookup(page: str, keyword: str) -> str:
    """The sentence of the current page that mentions ``keyword`` (a local operation)."""
    for sentence in page.split(". "):
        if keyword.lower() in sentence.lower():
            return sentence
    return f"No more results for {keyword}."


def react(client, wiki, question, max_steps=8):
    transcript = f"Question: {question}\n"
    page = ""
    for step in range(1, max_steps + 1):
        resp = client.chat.completions.create(
            model=FAST,
            messages=[{"role": "system", "content": REACT_SYSTEM},
                      {"role": "user", "content": transcript + f"Thought {step}:"}],
            stop=[f"\nObservation {step}:"])
        thought = resp.choices[0].message.content.strip()
        action, arg = parse_action(thought, step)
        transcript += f"Thought {step}: {thought}\nAction {step}: {action}[{arg}]\n"
        if action == "Finish":
            return {"answer": arg, "steps": step, "transcript": transcript}
        if action == "Search":
            results = wiki.search(arg, k=2)
            page = " ".join(results)
            observation = results[0]
        else:
            observation = lookup(page, arg)
        transcript += f"Observation {step}: {observation}\n"
    return {"answer": None, "steps": max_steps, "transcript": transcript}


def react_pooled(pool, client, wiki, question, max_steps=8):
    # Every step needs the one before: nothing to run at once.
    return react(client, wiki, question, max_steps)


# =========================================================================================
# 7. RAG-Fusion: several rewrites of the question, a search for each, reciprocal-rank
#    fusion of the rankings, one grounded answer.
# =========================================================================================
ANGLES = ["history", "causes", "recent developments", "comparisons", "key numbers"]


def reciprocal_rank_fusion(rankings: list[list[str]], k: int = 60) -> list[str]:
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking):
            scores[doc] = scores.get(doc, 0.0) + 1.0 / (k + rank + 1)
    return sorted(scores, key=lambda d: (-scores[d], d))


def rag_fusion(client, index, question):
    queries = [question]
    for angle in ANGLES:
        queries.append(ask(client, f"Rewrite this question as a search query about its {angle}: "
                                   f"{question}").strip())
    rankings = [index.search(q, k=5) for q in queries]
    fused = reciprocal_rank_fusion(rankings)
    context = "\n".join(fused[:4])
    answer = ask(client, f"Answer using only the context.\nContext:\n{context}\n\nQuestion: {question}",
                 model=STRONG)
    return {"queries": queries, "context": fused[:4], "answer": answer}


def rag_fusion_pooled(pool, client, index, question):
    rewrites = [pool.submit(ask, client, f"Rewrite this question as a search query about its "
                                         f"{angle}: {question}") for angle in ANGLES]
    first = pool.submit(index.search, question, k=5)
    queries = [question] + [f.result().strip() for f in rewrites]
    searches = [first] + [pool.submit(index.search, q, k=5) for q in queries[1:]]
    fused = reciprocal_rank_fusion([f.result() for f in searches])
    context = "\n".join(fused[:4])
    answer = ask(client, f"Answer using only the context.\nContext:\n{context}\n\nQuestion: {question}",
                 model=STRONG)
    return {"queries": queries, "context": fused[:4], "answer": answer}


# =========================================================================================
# 8. LLM-judge tournament: each model answers, then pairs are judged round by round.
# =========================================================================================
CONTESTANTS = ["gpt-4o-mini", "claude-3-haiku", "llama-3.1-8b", "mistral-small",
               "gemma-2-9b", "qwen2.5-7b", "phi-3-medium", "command-r"]


def judge_pair(client, a, b):
    prompt = (f"Which response answers better? Reply A or B.\n\nResponse A ({a[0]}):\n{a[1]}\n\n"
              f"Response B ({b[0]}):\n{b[1]}")
    resp = client.chat.completions.create(model=STRONG, messages=[{"role": "user", "content": prompt}],
                                          temperature=0)
    judgment = resp.choices[0].message.content
    winner = a if score(judgment) % 2 else b
    return winner, prompt, judgment


def tournament(client, task, models):
    entries = []
    for m in models:
        resp = client.chat.completions.create(model=m, messages=[{"role": "user", "content": task}])
        entries.append((m, resp.choices[0].message.content))
    log = []
    round_no = 0
    while len(entries) > 1:
        round_no += 1
        survivors = []
        for i in range(0, len(entries) - 1, 2):
            winner, prompt, judgment = judge_pair(client, entries[i], entries[i + 1])
            log.append((round_no, entries[i][0], entries[i + 1][0], winner[0], len(prompt), judgment))
            survivors.append(winner)
        if len(entries) % 2:
            survivors.append(entries[-1])  # a bye
        entries = survivors
    return entries[0], log


def tournament_pooled(pool, client, task, models):
    def answer(m):
        resp = client.chat.completions.create(model=m, messages=[{"role": "user", "content": task}])
        return m, resp.choices[0].message.content

    entries = [f.result() for f in [pool.submit(answer, m) for m in models]]
    log = []
    round_no = 0
    while len(entries) > 1:
        round_no += 1
        pairs = [(entries[i], entries[i + 1]) for i in range(0, len(entries) - 1, 2)]
        futures = [pool.submit(judge_pair, client, a, b) for a, b in pairs]
        survivors = []
        for (a, b), f in zip(pairs, futures):
            winner, prompt, judgment = f.result()
            log.append((round_no, a[0], b[0], winner[0], len(prompt), judgment))
            survivors.append(winner)
        if len(entries) % 2:
            survivors.append(entries[-1])
        entries = survivors
    return entries[0], log


# =========================================================================================
# 9. DSPy-style multi-hop QA: each hop writes a few search queries from what is known so
#    far, retrieves for each, and adds new passages; then one answer from the context.
# =========================================================================================
def generate_query(client, question, context, i):
    ctx = "\n".join(context) or "N/A"
    prompt = (f"Context:\n{ctx}\n\nQuestion: {question}\n"
              f"Write search query #{i + 1} that would find missing information.\nQuery:")
    return ask(client, prompt).split("(")[0].strip()


def answer_from(client, question, context):
    ctx = "\n".join(f"[{i + 1}] {p}" for i, p in enumerate(context))
    return ask(client, f"Context:\n{ctx}\n\nQuestion: {question}\nAnswer in a few words:", model=STRONG)


def multihop_qa(client, index, question, hops=3, per_hop=3):
    context = []
    for _ in range(hops):
        queries = []
        for i in range(per_hop):
            queries.append(generate_query(client, question, context, i))
        for q in queries:
            for passage in index.search(q, k=2):
                if passage not in context:
                    context.append(passage)
    return answer_from(client, question, context), context


def multihop_qa_pooled(pool, client, index, question, hops=3, per_hop=3):
    context = []
    for _ in range(hops):
        snapshot = list(context)
        queries = [pool.submit(generate_query, client, question, snapshot, i) for i in range(per_hop)]
        hits = [pool.submit(index.search, f.result(), k=2) for f in queries]
        for f in hits:
            for passage in f.result():
                if passage not in context:
                    context.append(passage)
    return answer_from(client, question, context), context


# =========================================================================================
# 10. Self-Refine: draft, critique, refine until the critic is satisfied, for each task.
# =========================================================================================
def self_refine(client, task, max_iters=2):
    draft = ask(client, f"Task: {task}\nWrite a first version.")
    for it in range(max_iters):
        feedback = ask(client, f"Task: {task}\nDraft:\n{draft}\n\nGive concrete feedback. "
                               "Say 'looks good' if nothing needs to change.")
        if score(feedback) >= 9:  # the critic is satisfied
            return draft, it
        draft = ask(client, f"Task: {task}\nDraft:\n{draft}\nFeedback:\n{feedback}\n"
                            "Rewrite the draft applying the feedback.")
    return draft, max_iters


def refine_all(client, tasks):
    results = {}
    for t in tasks:
        results[t] = self_refine(client, t)
    return results


def refine_all_pooled(pool, client, tasks):
    futures = {t: pool.submit(self_refine, client, t) for t in tasks}
    return {t: f.result() for t, f in futures.items()}


# =========================================================================================
# 11. Self-consistency: sample several reasoning paths per question (different seeds),
#     parse each JSON answer, take the majority; an unclear vote goes to a stronger model.
# =========================================================================================
COT_SYSTEM = 'Think step by step, then reply as JSON: {"reasoning": "...", "answer": <integer>}.'


def self_consistency(client, questions, n=7):
    results = {}
    for q in questions:
        votes = []
        for seed in range(n):
            resp = client.chat.completions.create(
                model=FAST, temperature=0.8, seed=seed,
                messages=[{"role": "system", "content": COT_SYSTEM},
                          {"role": "user", "content": f"{q}\n(sample {seed})"}])
            data = json.loads(as_json(resp.choices[0].message.content))
            votes.append(int(data["answer"]))
        answer, count = Counter(votes).most_common(1)[0]
        if count <= n // 2:  # no clear majority: ask the strong model to decide
            options = ", ".join(str(v) for v in sorted(set(votes)))
            raw = ask(client, f"{q}\nCandidate answers: {options}. Which is right?", model=STRONG,
                      system=COT_SYSTEM)
            answer = int(json.loads(as_json(raw))["answer"])
        results[q] = (answer, count)
    return results


def self_consistency_pooled(pool, client, questions, n=7):
    def sample(q, seed):
        resp = client.chat.completions.create(
            model=FAST, temperature=0.8, seed=seed,
            messages=[{"role": "system", "content": COT_SYSTEM},
                      {"role": "user", "content": f"{q}\n(sample {seed})"}])
        return int(json.loads(as_json(resp.choices[0].message.content))["answer"])

    samples = {q: [pool.submit(sample, q, s) for s in range(n)] for q in questions}
    tally = {}
    breakers = {}
    for q, fs in samples.items():
        votes = [f.result() for f in fs]
        tally[q] = Counter(votes).most_common(1)[0]
        if tally[q][1] <= n // 2:
            options = ", ".join(str(v) for v in sorted(set(votes)))
            breakers[q] = pool.submit(ask, client, f"{q}\nCandidate answers: {options}. Which is right?",
                                      model=STRONG, system=COT_SYSTEM)
    results = {}
    for q in questions:
        answer, count = tally[q]
        if q in breakers:
            answer = int(json.loads(as_json(breakers[q].result()))["answer"])
        results[q] = (answer, count)
    return results


# =========================================================================================
# 12. Classification with a retry: a reply that is not a label is asked again, firmly.
# =========================================================================================
LABEL_PROMPT = "Classify the support ticket. Reply with one word: the category."
RETRY_PROMPT = ("Your previous reply was not a valid category. Reply with exactly one of: "
                + ", ".join(sorted(set(_LABELS.values()))) + ".")


def classify(client, ticket, retry=False):
    messages = [{"role": "system", "content": LABEL_PROMPT}, {"role": "user", "content": ticket}]
    if retry:
        messages.append({"role": "system", "content": RETRY_PROMPT})
    resp = client.chat.completions.create(model=FAST, messages=messages, temperature=0)
    return resp.choices[0].message.content


def classify_tickets(client, tickets):
    labels = []
    for t in tickets:
        try:
            label = label_of(classify(client, t))
        except ValueError:
            label = label_of(classify(client, t, retry=True))
        labels.append(label)
    return labels


def classify_tickets_pooled(pool, client, tickets):
    first = [pool.submit(classify, client, t) for t in tickets]
    labels = []
    retries = {}
    for i, (t, f) in enumerate(zip(tickets, first)):
        try:
            labels.append(label_of(f.result()))
        except ValueError:
            labels.append(None)
            retries[i] = pool.submit(classify, client, t, retry=True)
    for i, f in retries.items():
        labels[i] = label_of(f.result())
    return labels


# -- the corpus ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Program:
    """One program of the corpus: its plain and hand-pooled versions and what a run costs."""

    name: str
    kind: str
    fn: Callable[..., Any]  # fn(client, *args)
    pooled: Callable[..., Any]  # pooled(pool, client, *args)
    args: tuple[Any, ...]  # the arguments the benchmark calls it with
    calls: int  # requests a run with ``args`` makes: completions plus searches
    depth: int  # requests on the critical path of that run
    # Other arguments of the same types (the same argument signature): other inputs
    # of a dataset, taking other paths through the program.  Some make it raise.
    variants: tuple[tuple[Any, ...], ...] = ()

    def plain(self, client: Any) -> Any:
        return self.fn(client, *self.args)


TICKETS = (
    "I was charged twice for my subscription this month.",
    "The export button does nothing in Firefox.",
    "How do I rotate my API key?",
    "Please add dark mode to the dashboard.",
    "Our whole team is locked out since this morning! Any ideas?",
    "The invoice shows the wrong company address. Please advise.",
    "Love the new editor, it is much faster.",
    "Can I move my workspace to another region?",
    "Search results are empty for queries with accents. Thanks.",
    "Is there a discount for nonprofits? Any ideas?",
)

CORPUS = [
    Program(
        "tree-of-thoughts", "Tree-of-Thoughts BFS (k=4, b=2, 3 levels, value cache)",
        tree_of_thoughts, tree_of_thoughts_pooled,
        args=("Use 4, 7, 8, 8 and + - * / to make 24.",), calls=24, depth=6,
        variants=(("Use 1, 5, 5, 5 and + - * / to make 24.",),
                  ("Write a 5-letter word crossword row: ocean animal.",))),
    Program(
        "mixture-of-agents", "Mixture-of-Agents (5 proposers x 3 layers, aggregator per layer)",
        mixture_of_agents, mixture_of_agents_pooled,
        args=("What are the trade-offs of nuclear power for a small island nation?",),
        calls=18, depth=6,
        variants=(("How should a city decide between trams and buses?",),
                  ("Summarize the causes of the 2008 financial crisis.", 2))),
    Program(
        "storm", "STORM-like outline + per-section writing",
        storm, storm_pooled, args=("the history of the bicycle",), calls=13, depth=4,
        variants=(("coral reef ecology",), ("the printing press",))),
    Program(
        "map-reduce", "map-reduce summarization (8 chunks, collapse, reduce)",
        map_reduce_summary, map_reduce_summary_pooled, args=(REPORT,), calls=11, depth=3,
        variants=((REPORTS["model release notes"],), (REPORT, 4))),
    Program(
        "digest-genexpr", "per-report digests by a generator expression, one brief",
        digest_reports, digest_reports_pooled, args=(REPORTS,), calls=13, depth=2,
        variants=(({"release notes": REPORTS["model release notes"]},), ({},))),
    Program(
        "react", "ReAct loop (thought -> action -> observation)",
        react, react_pooled,
        args=(WIKI, "Which river runs through the most capital cities? Give the river's name."),
        calls=12, depth=12,
        variants=((WIKI, "Which river flows through four capital cities?"),
                  (WIKI, "What river passes through the most European capitals? Answer briefly."))),
    Program(
        "rag-fusion", "RAG-Fusion (5 rewrites, 6 searches, RRF, answer)",
        rag_fusion, rag_fusion_pooled,
        args=(WIKI, "Why did the Hanseatic League decline?"), calls=12, depth=3,
        variants=((WIKI, "How do glaciers shape valleys?"),)),
    Program(
        "judge-tournament", "LLM-judge tournament (8 models, 3 rounds of pairs)",
        tournament, tournament_pooled,
        args=("Explain recursion to a ten-year-old in three sentences.", tuple(CONTESTANTS)),
        calls=15, depth=4,
        variants=(("Write a limerick about a cat.", tuple(CONTESTANTS[:5])),  # byes
                  ("Name three prime numbers.", tuple(CONTESTANTS[:1])))),  # no match at all
    Program(
        "multihop-qa", "DSPy-style multi-hop QA (3 hops x 3 queries + searches)",
        multihop_qa, multihop_qa_pooled,
        args=(WIKI, "Which trade network carried paper-making west, and what replaced it?"),
        calls=19, depth=7,
        variants=((WIKI, "Who described an algorithm before computers existed?", 2, 4),)),
    Program(
        "self-refine", "Self-Refine (draft -> critique -> refine) over 4 tasks",
        refine_all, refine_all_pooled,
        args=(("a haiku about autumn rain", "a product description for a steel water bottle",
               "an apology email for a late delivery", "a tweet announcing a library release"),),
        calls=13, depth=5,
        variants=((("a slogan for a bakery", "a limerick about a cat", "a cover letter opening"),),)),
    Program(
        "self-consistency", "self-consistency voting (7 samples x 3 questions, tie-break)",
        self_consistency, self_consistency_pooled,
        args=(("A train leaves at 9:40 and arrives at 13:05; how many minutes is the trip?",
               "How many prime numbers are there below 40?",
               "If 3 pencils cost 45 cents, how many cents do 7 pencils cost?"),),
        calls=24, depth=2,
        variants=((("What is 17 * 23?", "How many edges does a cube have?"), 5),)),
    Program(
        "classify-retry", "classification with a try/except retry (10 tickets)",
        classify_tickets, classify_tickets_pooled, args=(TICKETS,), calls=15, depth=2,
        variants=((TICKETS[3:7],),
                  # the third ticket's retry is no label either: a ValueError, plain or not
                  (("How do I rotate my API key?", "Please add dark mode to the dashboard.",
                    "Our whole team is locked out since this morning!",
                    "Love the new editor, it is much faster."),))),
]
