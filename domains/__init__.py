"""Domain packages: data, tasks, metrics and configs on top of the `zoo` core.

`domains` is extendable: a folder named `domains/` elsewhere on `sys.path` adds
its sub-packages here, so a lab can keep its own domain outside this repository.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
