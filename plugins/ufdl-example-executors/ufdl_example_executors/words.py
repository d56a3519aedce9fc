"""``WordCounter``: counts the words of a text, in pure Python, reporting progress as it reads."""
import collections
import json
import os
import re
from pathlib import Path

from ufdl_pyramid.executors import ExecutionContext, ExecutionError, Executor

_WORD = re.compile(r"\w+(?:['’]\w+)*")
_CHECK_EVERY_LINES = 1000


class WordCounter(Executor):
    """Input ``input``: a downloaded job output (a local path), or text. Parameters: ``lowercase`` (default
    true) and ``top`` (default 10). Output ``output`` (``JSON``): ``{"total": n, "top": [[word, count], ...]}``,
    the most frequent words first, ties in alphabetical order. Progress is reported every tenth of the input."""

    def execute(self, context: ExecutionContext) -> None:
        lowercase = bool(context.parameters.get("lowercase", True))
        top = int(context.parameters.get("top", 10))
        if top < 0:
            raise ExecutionError(f"the parameter 'top' must not be negative, not {top}")
        counts = collections.Counter()
        for line in self.lines(context):
            counts.update(_WORD.findall(line.lower() if lowercase else line))
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]
        result = {"total": sum(counts.values()), "top": [[word, count] for word, count in ranked]}
        context.progress(1.0)
        context.add_output("output", "JSON", json.dumps(result).encode("utf-8"))

    @staticmethod
    def lines(context: ExecutionContext):
        """The input's lines; reports progress each tenth of the bytes and checks for cancellation."""
        value = context.inputs.get("input")
        kind = context.job.get("input_values", {}).get("input", {}).get("type", "")
        if value is None:
            raise ExecutionError("the input 'input' is missing")
        if not (kind.startswith("JobOutput") or isinstance(value, os.PathLike)):
            yield from str(value).splitlines()
            return
        path = Path(value)
        size = path.stat().st_size or 1
        done, next_report = 0, 0.1
        context.progress(0.0)
        with open(path, "rb") as lines:
            for number, raw in enumerate(lines, 1):
                done += len(raw)
                if done / size >= next_report:
                    context.progress(min(done / size, 1.0) * 0.99)
                    next_report = (int(done / size * 10) + 1) / 10
                if number % _CHECK_EVERY_LINES == 0:
                    context.check_cancelled()
                yield raw.decode("utf-8", "replace")
