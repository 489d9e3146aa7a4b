"""One-off studies: measurements made once to answer a question, kept so their numbers can be re-made.

Unlike the suites in `benchmarks/`, nothing regenerates these tables routinely; each module's
docstring names its command and benchmarks/README.md names the docs section holding its result.
"""
