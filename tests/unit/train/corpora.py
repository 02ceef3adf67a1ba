"""Small offline text data for the training tests (nothing is downloaded).

- :func:`topic_csv`: a small *synthetic* 3-topic classification task (sport / cooking /
  weather sentences from word lists and templates), for checking that text models learn.
- :func:`docstring_corpus`: *real* English prose: the docstrings of a few standard-library
  modules, one line per document, for the language-model tests.
"""

from __future__ import annotations

import csv
import importlib
import inspect
import random
from pathlib import Path

TOPICS = {
    "sport": ["match", "goal", "team", "coach", "league", "striker", "referee", "stadium", "season", "keeper"],
    "cooking": ["recipe", "oven", "flour", "butter", "sauce", "garlic", "dough", "skillet", "simmer", "pastry"],
    "weather": ["rain", "cloud", "storm", "forecast", "wind", "thunder", "sunshine", "frost", "humidity", "drizzle"],
}
FILLER = ["the", "a", "was", "very", "today", "again", "after", "before", "quite", "our", "new", "old", "big"]
TEMPLATES = ["{f1} {w1} {f2} {w2}", "{w1} {f1} {f2} {w2} {f3}", "{f1} {f2} {w1} {w2} {f3} {w3}",
             "{w1} {f1} {w2}", "{f1} {w1} {f2} {f3} {w2} {w3}"]


def topic_csv(path: Path, rows: int = 240, seed: int = 0) -> Path:
    """Write ``text,label`` rows of topic sentences (labels: sport, cooking, weather)."""
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for i in range(rows):
            label = list(TOPICS)[i % 3]
            words = TOPICS[label]
            template = rng.choice(TEMPLATES)
            text = template.format(w1=rng.choice(words), w2=rng.choice(words), w3=rng.choice(words),
                                   f1=rng.choice(FILLER), f2=rng.choice(FILLER), f3=rng.choice(FILLER))
            writer.writerow([f"{text} {i}", label])  # the row number keeps every text distinct (no dedup)
    return path


MODULES = ("string", "textwrap", "json", "collections", "functools", "itertools", "statistics", "random",
           "shutil", "pathlib", "argparse", "csv", "difflib", "heapq", "bisect", "fractions")


def docstring_corpus(path: Path, max_lines: int = 1200) -> Path:
    """Write the docstrings of some standard-library modules and their members, one line a document."""
    lines: list[str] = []
    for name in MODULES:
        module = importlib.import_module(name)
        docs = [inspect.getdoc(module) or ""]
        for member_name, member in sorted(vars(module).items()):
            if not member_name.startswith("_") and (inspect.isfunction(member) or inspect.isclass(member)):
                docs.append(inspect.getdoc(member) or "")
        for doc in docs:
            lines += [line.strip() for line in doc.splitlines() if len(line.strip()) >= 30]
    unique = list(dict.fromkeys(lines))[:max_lines]
    path.write_text("\n".join(unique) + "\n", encoding="utf-8")
    return path
