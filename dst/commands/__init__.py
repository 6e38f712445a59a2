"""The commands of ``dst``: one module each (run, replay, check, shrink,
conform, bench), each exposing ``add_parser(subparsers)`` and ``main(args)``.

Commands never import each other; what two need lives in a lower layer
(``dst.console`` for the terminal, the rest in ``dst.sim``, ``dst.check``,
``dst.report`` or ``dst.bench.suite``).
"""
