"""A fork server for tests that kill the real CLI: imports lstmkit once, then forks one child
per request, so each ``lstmkit`` process costs milliseconds instead of a 2-3 s interpreter start.

Protocol (one JSON object per line): stdin ``{"argv": [...], "env": {...}, "log": PATH,
"umask": INT or null}``; stdout ``{"code": EXITCODE}`` (negative: killed by that signal). The
child runs ``lstmkit.cli.main(argv)`` with stdout and stderr going to ``log``; an uncaught
exception prints its traceback there, as a fresh interpreter would.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

import torch

import lstmkit.cli
import lstmkit.fileio
import lstmkit.tasks
import lstmkit.train.loop  # imported once here, shared by every child


def child(request: dict) -> int:
    fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", closefd=False)
    os.environ.pop(lstmkit.fileio.FAULT_ENV, None)
    os.environ.update(request.get("env") or {})
    lstmkit.fileio._reached.clear()
    if request.get("umask") is not None:
        os.umask(request["umask"])
    try:
        code = lstmkit.cli.main(request["argv"])
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except KeyboardInterrupt:
        traceback.print_exc()
        code = 130
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def preload() -> None:
    """Import what a run imports lazily (torch._dynamo through the optimiser, matplotlib and its
    fonts), so that no child pays for it. No torch op runs here: no thread pool to fork."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
    Figure(figsize=(1, 1)).savefig(io.BytesIO(), format="png")


def serve() -> None:
    torch.set_num_threads(1)
    preload()
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            os._exit(child(request))
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"code": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    serve()
