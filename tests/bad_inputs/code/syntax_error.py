def fine(x):
    return x + 1


def broken(:
    return 2


never_reached = 3
