"""A small file to complete (`zoo code predict` in `make demo`): the cursor is line 16, col 23, after `os.path.`."""

import os


def list_python_files(folder):
    found = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isfile(path) and name.endswith(".py"):
            found.append(path)
    return found


def total_size(folder):
    return sum(os.path.getsize(path) for path in list_python_files(folder))
