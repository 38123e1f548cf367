"""The local LLM process: llama.cpp (``xllamacpp``) serving one GGUF model over OpenAI-compatible HTTP.

``syntx up --llm local`` starts it as ``python -m syntx.llama_server --model FILE --port N …`` and stops
it with SIGTERM. It writes ``READY_LINE`` to stdout once the model is loaded and the port is bound;
llama.cpp's own log (with the reason for any failure) goes to stderr.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

READY_LINE = "llama-server ready"
MISSING_RUNTIME_EXIT = 3
START_FAILED_EXIT = 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m syntx.llama_server")
    parser.add_argument("--model", required=True, help="a GGUF file")
    parser.add_argument("--name", default="local", help="the model name the server answers to")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ctx", type=int, required=True, help="context tokens, shared by the slots")
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--threads", type=int, help="unset: llama.cpp's choice")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        import xllamacpp
    except ImportError:
        sys.stderr.write("E xllamacpp is not installed\n")
        return MISSING_RUNTIME_EXIT
    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.model_alias = {args.name}
    params.hostnames = [args.host]
    params.port = args.port
    params.n_ctx = args.ctx
    params.n_parallel = args.parallel
    if args.threads:
        params.cpuparams.n_threads = args.threads
        params.cpuparams_batch.n_threads = args.threads
    stop = threading.Event()

    def _on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _on_signal)
    try:
        server = xllamacpp.Server(params)
    except RuntimeError:
        return START_FAILED_EXIT  # llama.cpp has written the reason to stderr
    sys.stdout.write(f"{READY_LINE} at {server.listening_address}\n")
    sys.stdout.flush()
    stop.wait()
    del server  # stops llama.cpp's HTTP server and main loop
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
