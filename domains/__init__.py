"""Domain packages: data, tasks, metrics and configs on top of the `zoo` core.

`domains` is extendable, so a lab can keep its own domain outside this
repository: a folder `domains/` elsewhere on `sys.path`, holding a copy of this
`__init__.py` and the lab's `domains/<name>/` package, adds `zoo <name> ...`.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
