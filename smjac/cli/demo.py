"""``smjac demo``: the blog post's example, step by step."""

from ..outputs import results
from .commands import done
from .options import (
    Output,
    output_options,
)


@output_options(results.DEMO, precision=5, files=False, fixed={"fmt": "table", "quiet": False})
def demo(out: Output) -> None:
    """Walk through the blog post on its own example, step by step.

    \b
    Example:
      smjac demo
    """
    w = out.writer(results.DEMO)
    done(w.write(results.demo(precision=out.precision, width=w.env.width)))
